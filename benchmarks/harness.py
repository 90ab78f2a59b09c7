"""Runs the scenarios: start the server (and Redis), warm it, run ghz at each concurrency and
repeat, record what the service says it did (decision sources from its metrics) and how busy
the machine was, stop everything by pid."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmarks.ghz import GhzResult, Load, pinned, run_ghz
from benchmarks.machine import CpuWindow, QuietReport, loadavg, wait_quiet
from benchmarks.procs import (
    Proc,
    RedisProc,
    echo_argv,
    free_ports,
    scrape_metrics,
    service_argv,
    wait_serving,
)
from benchmarks.scenarios import Scenario, service_config
from benchmarks.workload import (
    batch_requests,
    candidates_from_bundle,
    route_requests,
    write_delimited,
)

__all__ = [
    "Measurement",
    "RunOptions",
    "ScenarioResult",
    "Server",
    "Workloads",
    "run_scenario",
    "serve_scenario",
]

POOL_SIZE = 2000
_LABELS = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class RunOptions:
    concurrencies: tuple[int, ...]
    repeats: int
    duration_s: float | None  # None: ``total`` requests per run
    total: int
    warmup_total: int
    quiet_cores: float
    quiet_max_wait_s: float
    raw_dir: Path
    log_dir: Path
    pin: bool = False
    """Server on CPU 0, ghz on CPU 1 (``taskset``), so the client never takes the server's
    core; multi-worker scenarios leave the server unpinned (its workers need both)."""


@dataclass(frozen=True)
class Measurement:
    scenario: str
    concurrency: int
    repeat: int
    ghz: GhzResult
    sources: dict[str, int]  # decision source -> count, from the service's metrics
    cache: dict[str, int]  # "tier/kind/result" -> count
    other_cores: float  # CPU used by processes the harness did not start, during the run
    server_cores: float  # CPU used by the server processes (and Redis), during the run
    client_cores: float  # CPU used by ghz
    server_cpu_us: float  # server CPU per call (per RouteBatch call for batches)
    load1: float  # 1-minute load average just before the run
    raw: str  # raw ghz report, relative to the results directory


@dataclass
class ScenarioResult:
    scenario: Scenario
    quiet: QuietReport | None = None
    runs: list[Measurement] = field(default_factory=list)
    error: str = ""


class Workloads:
    """ghz input files, written once per (bundle, router, prompt set, batch size)."""

    def __init__(self, bundles: dict[str, Path], prompts: Sequence[str], folder: Path) -> None:
        self.bundles = bundles
        self.prompts = list(prompts)
        self.folder = folder
        self._files: dict[tuple[str, str, str, int], Path] = {}

    def same_prompt(self) -> str:
        """The prompt of median length: a typical request, the same every run."""
        ordered = sorted(self.prompts[:POOL_SIZE], key=len)
        return ordered[len(ordered) // 2]

    def router_name(self, scenario: Scenario) -> str:
        if scenario.router:
            return scenario.router
        manifest = json.loads((self.bundles[scenario.bundle] / "manifest.json").read_text())
        return str(manifest["name"])

    def prompt_set(self, scenario: Scenario) -> list[str]:
        if scenario.prompts == "same":
            return [self.same_prompt()]
        return self.prompts[:POOL_SIZE] if scenario.prompts == "pool" else self.prompts

    def file(self, scenario: Scenario) -> Path:
        router = self.router_name(scenario)
        key = (scenario.bundle, router, scenario.prompts, scenario.batch)
        if key not in self._files:
            specs = candidates_from_bundle(self.bundles[scenario.bundle])
            prompts = self.prompt_set(scenario)
            msgs = (
                batch_requests(prompts, specs, router, scenario.batch)
                if scenario.method == "RouteBatch"
                else route_requests(prompts, specs, router)
            )
            name = f"{scenario.bundle}-{router}-{scenario.prompts}-b{scenario.batch}.bin"
            self._files[key] = write_delimited(self.folder / name, msgs)
        return self._files[key]


@dataclass
class Server:
    target: str
    pids: list[int]
    metrics_ports: list[int]
    redis: RedisProc | None


def _service_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ROUTEIQ_REDIS_URL", None)  # Redis only where the scenario's config asks for it
    env.pop("ROUTEIQ_CONFIG", None)
    env["ROUTEIQ_SERVER__DRAIN_DELAY_S"] = "0"  # stopped after its load is over: nothing to drain
    return env


def _wait_metrics(ports: Sequence[int], proc: Proc, timeout_s: float = 60.0) -> None:
    """Every worker's /metrics answers (each worker serves its own, on port + index)."""
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            try:
                scrape_metrics([port])
                break
            except OSError:
                if proc.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker metrics on port {port} never answered") from None
                time.sleep(0.1)


@contextlib.contextmanager
def serve_scenario(
    scenario: Scenario, bundles: dict[str, Path], log_dir: Path, cpu: int | None = None
) -> Iterator[Server]:
    """The scenario's server (and Redis), SERVING on a free port (on CPU ``cpu`` only, when
    given); stopped by pid on exit."""
    redis = RedisProc(log_dir) if scenario.redis != "none" else None
    port = free_ports(1)
    metrics = free_ports(scenario.workers) if scenario.server == "service" else 0
    work = Path(tempfile.mkdtemp(prefix=f"routeiq-bench-{scenario.name}-"))
    if scenario.server == "echo":
        argv = echo_argv(port)
    else:
        cfg = service_config(
            scenario, metrics, str(work / "outcomes.jsonl"), redis.url if redis else None
        )
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        argv = service_argv(
            port, work / "config.yaml", [bundles[scenario.bundle]], scenario.workers
        )
    proc = Proc(pinned(argv, cpu), log_dir, f"{scenario.name}-{port}", _service_env())
    try:
        wait_serving(f"127.0.0.1:{port}", proc.proc, timeout_s=60)
        ports = [metrics + i for i in range(scenario.workers)] if metrics else []
        _wait_metrics(ports, proc)
        if scenario.workers > 1:
            time.sleep(2.0)  # metrics answer before routers load; let every worker finish
        pids = [proc.pid] + ([redis.pid] if redis else [])
        yield Server(f"127.0.0.1:{port}", pids, ports, redis)
    except Exception:
        print(f"    server log tail:\n{proc.log_tail()}", flush=True)
        raise
    finally:
        proc.stop()
        proc.compress_log()
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)


def _delta(before: dict[str, float], after: dict[str, float]) -> tuple[dict[str, int], ...]:
    sources: dict[str, int] = {}
    cache: dict[str, int] = {}
    for key, value in after.items():
        diff = round(value - before.get(key, 0.0))
        if diff <= 0:
            continue
        labels = dict(_LABELS.findall(key))
        if key.startswith("routeiq_decisions_total"):
            sources[labels["source"]] = sources.get(labels["source"], 0) + diff
        elif key.startswith("routeiq_cache_requests_total"):
            name = f"{labels['tier']}/{labels['kind']}/{labels['result']}"
            cache[name] = cache.get(name, 0) + diff
    return sources, cache


def _scrape(server: Server) -> dict[str, float]:
    return scrape_metrics(server.metrics_ports) if server.metrics_ports else {}


class _Runner:
    def __init__(self, scenario: Scenario, opts: RunOptions, work: Workloads) -> None:
        self.s = scenario
        self.opts = opts
        self.work = work
        self.client_cpu = 1 if opts.pin else None
        self.server_cpu = 0 if opts.pin and scenario.workers == 1 else None

    def load(self, concurrency: int, total: int | None = None) -> Load:
        return Load(
            method=self.s.method,
            data=self.work.file(self.s),
            concurrency=concurrency,
            connections=self.s.connections,
            total=total or self.opts.total,
            duration_s=None if total else self.opts.duration_s,
        )

    def warm(self, server: Server, raw: Path) -> None:
        pool = len(self.work.prompt_set(self.s))
        total = pool if self.s.warm_pool else self.opts.warmup_total
        load = self.load(min(8, max(self.opts.concurrencies)), total=total)
        out = raw / f"warmup-{self.s.name}.json.gz"
        result = run_ghz(load, server.target, out, self.client_cpu)
        if result.errors:
            raise RuntimeError(f"warm-up had {result.errors} errors: {result.error_kinds}")

    def measure(self, server: Server, concurrency: int, repeat: int) -> Measurement:
        if self.s.redis == "miss" and server.redis is not None:
            server.redis.flush()
        if self.s.warm_pool:
            self.warm(server, self.opts.raw_dir)
        name = f"{self.s.name}-c{concurrency}-r{repeat}.json.gz"
        load1 = loadavg()[0]
        before = _scrape(server)
        with CpuWindow(lambda: server.pids) as cpu:
            result = run_ghz(
                self.load(concurrency), server.target, self.opts.raw_dir / name, self.client_cpu
            )
        sources, cache = _delta(before, _scrape(server))
        return Measurement(
            self.s.name,
            concurrency,
            repeat,
            result,
            sources,
            cache,
            cpu.other_cores,
            cpu.server_cores,
            cpu.client_cores,
            cpu.server_s * 1e6 / max(result.count, 1),
            load1,
            f"raw/{name}",
        )


def _progress(m: Measurement, expect: str) -> str:
    g = m.ghz
    total = sum(m.sources.values())
    mix = ""
    if expect and total:
        mix = f", {expect} {100 * m.sources.get(expect, 0) / total:.0f}%"
    return (
        f"    c={m.concurrency:<3} r{m.repeat}: {g.rps:8.0f} rps  p50 {g.p50_ms:7.2f} ms  "
        f"p99 {g.p99_ms:7.2f} ms  errors {g.errors}{mix}  (server {m.server_cpu_us:.0f} µs "
        f"CPU/call, {m.server_cores:.2f} cores; ghz {m.client_cores:.2f}; "
        f"other {m.other_cores:.2f})"
    )


def run_scenario(
    scenario: Scenario,
    opts: RunOptions,
    work: Workloads,
    log: Callable[[str], None] = print,
) -> ScenarioResult:
    """Quiet wait, then every concurrency x repeat of ``scenario``; failures are recorded."""
    out = ScenarioResult(scenario)
    out.quiet = wait_quiet(opts.quiet_cores, opts.quiet_max_wait_s)
    q = out.quiet
    log(
        f"== {scenario.name}: {scenario.title}  (waited {q.waited_s:.0f} s for quiet: busy "
        f"{q.busy_cores:.2f} cores, load1 {q.load1:.2f}{'' if q.quiet else ', NOT quiet'})"
    )
    runner = _Runner(scenario, opts, work)
    try:
        with serve_scenario(scenario, work.bundles, opts.log_dir, runner.server_cpu) as server:
            runner.warm(server, opts.raw_dir)
            for c in opts.concurrencies:
                for r in range(1, opts.repeats + 1):
                    m = runner.measure(server, c, r)
                    out.runs.append(m)
                    log(_progress(m, scenario.expect))
    except Exception as exc:  # one broken scenario must not lose the others
        out.error = f"{type(exc).__name__}: {exc}"
        log(f"    FAILED: {out.error}")
    return out
