"""Processes the harness starts on 127.0.0.1 (the service, the echo server, Redis): free ports,
readiness, and stopping by pid."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from edge.devtools.processes import free_port, port_is_free, stop_process, wait_serving

__all__ = [
    "REPO",
    "Proc",
    "RedisProc",
    "free_port",
    "free_ports",
    "scrape_metrics",
    "tool",
    "wait_serving",
]

REPO = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free ports (metrics of worker i listen on port + i)."""
    for _ in range(100):
        first = free_port()
        if first + n < 65536 and all(port_is_free(first + i) for i in range(1, n)):
            return first
    raise RuntimeError(f"no {n} consecutive free ports")


def tool(name: str) -> str | None:
    """An external program: ``.tools/bin/NAME`` (installed by the project's scripts) or PATH."""
    local = REPO / ".tools" / "bin" / name
    return str(local) if local.exists() else shutil.which(name)


class Proc:
    """A child process with its output in a log file, stopped by pid (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: Sequence[str], log_dir: Path, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(argv), stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 20.0) -> int:
        code = stop_process(self.proc, timeout_s)
        self._log.close()
        return code

    def compress_log(self) -> None:
        """Gzip the log once the process is gone (fallback warnings can run to megabytes)."""
        if self.log_path.is_file():
            with gzip.open(self.log_path.with_suffix(".log.gz"), "wb") as fh:
                fh.write(self.log_path.read_bytes())
            self.log_path.unlink()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def service_argv(port: int, config: Path, bundles: Sequence[Path], workers: int) -> list[str]:
    argv = [sys.executable, "-m", "router_service", "serve", "--port", str(port)]
    argv += ["--config", str(config), "--workers", str(workers)]
    for bundle in bundles:
        argv += ["--bundle", str(bundle)]
    return argv


def echo_argv(port: int) -> list[str]:
    return [sys.executable, str(REPO / "benchmarks" / "echo_server.py"), "--port", str(port)]


class RedisProc:
    """``redis-server --port N --save ''`` in a temp dir, stopped by pid."""

    def __init__(self, log_dir: Path) -> None:
        server = tool("redis-server")
        if server is None:
            raise FileNotFoundError("redis-server not found: run `make tools`")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="routeiq-bench-redis-"))
        argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"]
        self.proc = Proc(argv, log_dir, f"redis-{self.port}", dict(os.environ))
        self._wait_ping()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ping(self, timeout_s: float = 10.0) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError(f"redis on {self.port} did not answer PING")

    def flush(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5).flushall()

    def keys(self) -> int:
        import redis

        return int(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5).dbsize())

    def stop(self) -> None:
        self.proc.stop()
        self.proc.compress_log()
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape_metrics(ports: Sequence[int]) -> dict[str, float]:
    """Sum each sample (name plus labels) of the Prometheus endpoints on ``ports``."""
    totals: dict[str, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            try:
                totals[key] = totals.get(key, 0.0) + float(value)
            except ValueError:
                continue
    return totals
