"""The machine under test: what it is, how busy it is, and who is using its CPU.

The machines are shared, so every measurement records the CPU used by *other* processes while
it ran: total busy time from ``/proc/stat`` minus the time of the processes the harness started
(servers, workers, Redis, ghz). :func:`wait_quiet` gates each scenario on that same signal,
sampled over one second, rather than on the 1-minute load average alone, which still carries the
harness's own previous scenario for a minute after it stopped (both are recorded).
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "CpuWindow",
    "QuietReport",
    "cpu_model",
    "loadavg",
    "machine_info",
    "proc_tree_seconds",
    "wait_quiet",
]

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def machine_info() -> dict[str, str]:
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _busy_total() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot."""
    with open("/proc/stat", encoding="utf-8") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / _TICK, total / _TICK


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="utf-8") as fh:
                kids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return kids


def _pid_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(rest[11]) + int(rest[12])) / _TICK  # utime + stime


def proc_tree_seconds(pids: Iterable[int]) -> float:
    """CPU seconds used so far by ``pids`` and their live descendants."""
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += _children(pid)
    return sum(_pid_seconds(p) for p in seen)


def _reaped_children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU use over a window, in cores: everything (``busy``), the live ``pids`` trees (the
    servers: ``server``), children reaped during the window (ghz: ``client``) and the rest
    (``other``: processes the harness did not start). ``server_s`` is in CPU seconds."""

    pids: Callable[[], list[int]]

    def __enter__(self) -> CpuWindow:
        self._t0 = time.monotonic()
        self._busy0 = _busy_total()[0]
        self._server0 = proc_tree_seconds(self.pids())
        self._client0 = _reaped_children_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self._t0, 1e-9)
        self.server_s = proc_tree_seconds(self.pids()) - self._server0
        client_s = _reaped_children_seconds() - self._client0
        self.busy_cores = (_busy_total()[0] - self._busy0) / wall
        self.server_cores = self.server_s / wall
        self.client_cores = client_s / wall
        self.other_cores = max(0.0, self.busy_cores - self.server_cores - self.client_cores)


@dataclass(frozen=True)
class QuietReport:
    waited_s: float
    busy_cores: float  # all processes, over the last 1 s sample
    load1: float
    quiet: bool


def _busy_cores_over(seconds: float) -> float:
    busy0, _ = _busy_total()
    t0 = time.monotonic()
    time.sleep(seconds)
    busy1, _ = _busy_total()
    return (busy1 - busy0) / (time.monotonic() - t0)


def wait_quiet(max_busy_cores: float, max_wait_s: float) -> QuietReport:
    """Wait until the machine's CPU use over one second is at most ``max_busy_cores`` (call it
    when the harness's own servers are stopped), for at most ``max_wait_s``."""
    start = time.monotonic()
    sample_s = 1.0 if max_wait_s > 0 else 0.2  # no waiting: just record how busy it is
    while True:
        busy = _busy_cores_over(sample_s)
        waited = time.monotonic() - start
        if busy <= max_busy_cores or waited >= max_wait_s:
            return QuietReport(waited, busy, loadavg()[0], busy <= max_busy_cores)
