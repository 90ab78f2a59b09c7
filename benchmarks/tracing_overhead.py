"""What OpenTelemetry tracing costs the service: cache-hit and miss throughput and latency with
tracing off, on at ``sample_ratio`` 0.01, and on at 1.0, in one run.

Six service processes (the default bundle, KNN over TF-IDF): for *hit*, LRU on and one
repeated prompt (every call after the first is a cache hit); for *miss*, prediction cache off
(``cache.lru_max_entries: 0``) and 2,000 real LLMRouter prompts, so every call runs the
featurizer and the router. Each workload runs under three arms: tracing off, and tracing on
with spans exported in batches (the SDK's defaults) over OTLP gRPC to a real Jaeger (in-memory
store) at sample ratio 0.01 and 1.0. The services are pinned to CPU 0 and ghz to CPU 1; Jaeger
runs on CPU 1 at ``nice 10``, so it never takes the server's core nor starves the load
generator. Rounds interleave the arms (``--rounds`` of each, arm order rotated every round), at
64 calls in flight (throughput) and at 1 (latency); medians reported with the ratio to "off",
the server's CPU per call, the share of answers from the expected source (CACHE / MODEL), and
what Jaeger received (traces of the 1 % arms against the calls made, spans per trace, orphan
traces — traces holding no call's server span, expected 0 — and spans the services dropped).
Writes ``summary.json``, ``tracing.png``, ghz's raw reports and the logs; exits 1 when Jaeger
holds orphan traces.

The harness pieces (starting, warming and measuring pinned services, interleaving arms over
rounds, the medians and ratios, the plot and the table) are shared with
:mod:`benchmarks.events_overhead`.

    python -m benchmarks.tracing_overhead [--rounds 3] [--seconds 5] [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.ghz import Load, pinned, run_ghz
from benchmarks.machine import CpuWindow, QuietReport, machine_info, wait_quiet
from benchmarks.plots import bars_with_runs, paired_bars
from benchmarks.procs import REPO, Proc, free_ports, scrape_metrics, service_argv
from benchmarks.workload import (
    candidates_from_bundle,
    load_prompts,
    route_requests,
    write_delimited,
)
from edge.devtools.processes import wait_serving
from tests.support.jaeger import JaegerServer

BUNDLE = REPO / "var" / "bundles" / "default"
DATA = REPO / "converters" / "data" / "llmrouter"
PROMPT = "How many prime numbers are there below one hundred?"
MISS_PROMPTS = 2000
CONCURRENCY = (64, 1)
WARMUP_CALLS = 500
SERVER_CPU, CLIENT_CPU = 0, 1
SIDE_NICE = 10  # Jaeger (here), Redis (events): on the client's CPU, behind ghz
QUIET_CORES, QUIET_WAIT_S = 0.3, 60.0  # before starting: wait (so long) for the machine to idle
ROUTE_SPAN = "/routeiq.router.v1.Router/Route"  # the gRPC server span of a Route call
_SOURCE = re.compile(r'source="([^"]*)"')


@dataclass(frozen=True)
class Arm:
    name: str  # shown, and the key in summary.json
    slug: str  # in file names and the services' names in Jaeger
    ratio: float | None  # telemetry.tracing.sample_ratio; None: tracing off


ARMS = (Arm("off", "off", None), Arm("1%", "1pct", 0.01), Arm("100%", "100pct", 1.0))
WORKLOADS = {"hit": "CACHE", "miss": "MODEL"}  # workload -> the source every answer should have


@dataclass(frozen=True)
class Run:
    workload: str
    arm: str
    concurrency: int
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    calls: int
    errors: int
    expected_share: float  # answers from the expected source (CACHE for hit, MODEL for miss)
    server_cpu_us: float  # the service's CPU per call
    side_cores: float  # the backend the arms write to (Jaeger, Redis)
    ghz_cores: float
    other_cores: float  # processes this benchmark did not start
    raw: str


@dataclass
class Service:
    workload: str
    arm: str  # the arm's name
    slug: str  # the arm's slug: the service's log and raw reports are named after both
    proc: Proc
    target: str
    metrics_port: int
    calls: int = 0  # every call it answered (warm-up included), for the sampled share


# -- shared with benchmarks.events_overhead -------------------------------------------------


def pin_threads(pid: int, cpu: int, nice: int) -> None:
    """Every thread of ``pid`` on CPU ``cpu`` at ``nice`` (threads started later inherit both)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except (ProcessLookupError, PermissionError):
            continue


def workload_data(work: Path, workloads: Iterable[str]) -> dict[str, Path]:
    """ghz input per workload: ``hit``, the one repeated prompt; ``miss``, 2,000 real prompts."""
    router = json.loads((BUNDLE / "manifest.json").read_text())["name"]
    specs = candidates_from_bundle(BUNDLE)
    out: dict[str, Path] = {}
    for workload in workloads:
        prompts = [PROMPT] if workload == "hit" else load_prompts([DATA], MISS_PROMPTS)
        out[workload] = write_delimited(
            work / f"{workload}.bin", route_requests(prompts, specs, router)
        )
    return out


def wait_for_quiet(smoke: bool) -> QuietReport:
    quiet = wait_quiet(QUIET_CORES, 0.0 if smoke else QUIET_WAIT_S)
    print(
        f"waited {quiet.waited_s:.0f} s for quiet: busy {quiet.busy_cores:.2f} cores, "
        f"load1 {quiet.load1:.2f}{'' if quiet.quiet else ', NOT quiet'}",
        flush=True,
    )
    return quiet


def start_service(
    workload: str, arm: str, slug: str, config: Callable[[int], Path], out: Path
) -> Service:
    """A service on CPU 0 serving the default bundle; ``config(metrics_port)`` writes its
    configuration. Not yet ready: see :func:`warm_up`."""
    port, metrics = free_ports(1), free_ports(1)
    argv = pinned(service_argv(port, config(metrics), [BUNDLE], 1), SERVER_CPU)
    proc = Proc(argv, out, f"{workload}-{slug}", {})
    return Service(workload, arm, slug, proc, f"127.0.0.1:{port}", metrics)


def warm_up(svc: Service, data: Path, out: Path) -> None:
    """Wait until ``svc`` serves, then send it the warm-up calls."""
    wait_serving(svc.target, svc.proc.proc, timeout_s=60)
    warm = run_ghz(
        Load("Route", data, 8, total=WARMUP_CALLS),
        svc.target,
        out / f"warmup-{svc.workload}-{svc.slug}.json.gz",
        CLIENT_CPU,
    )
    svc.calls += warm.count
    print(
        f"started {svc.workload:4s} {svc.arm:12s} on {svc.target} (warmed: "
        f"{warm.count} calls, {warm.rps:.0f}/s)",
        flush=True,
    )


def sources(port: int) -> dict[str, float]:
    """Decisions so far by source, from the service's /metrics."""
    out: dict[str, float] = {}
    for key, value in scrape_metrics([port]).items():
        if key.startswith("routeiq_decisions_total"):
            found = _SOURCE.search(key)
            if found:
                out[found.group(1)] = out.get(found.group(1), 0.0) + value
    return out


def measure(
    svc: Service,
    data: Path,
    conc: int,
    seconds: float,
    rnd: int,
    out: Path,
    expected: str,
    side_pid: int | None,
) -> Run:
    """One ghz run against ``svc``, with the CPU of the service, of ghz and of the side
    process (Jaeger, Redis), and the share of answers from the ``expected`` source."""
    name = f"{svc.workload}-{svc.slug}-c{conc}-r{rnd}.json.gz"
    before = sources(svc.metrics_port)
    side = [side_pid] if side_pid is not None else []
    with CpuWindow(lambda: side) as scpu, CpuWindow(lambda: [svc.proc.pid]) as cpu:
        res = run_ghz(
            Load("Route", data, conc, duration_s=seconds), svc.target, out / name, CLIENT_CPU
        )
    after = sources(svc.metrics_port)
    if res.errors:
        raise RuntimeError(
            f"{svc.workload}/{svc.arm}: {res.errors} failed calls: {res.error_kinds}"
        )
    svc.calls += res.count
    answered = sum(after.values()) - sum(before.values())
    hits = after.get(expected, 0.0) - before.get(expected, 0.0)
    return Run(
        svc.workload,
        svc.arm,
        conc,
        rnd,
        res.rps,
        res.p50_ms,
        res.p99_ms,
        res.count,
        res.errors,
        hits / answered if answered else 0.0,
        cpu.server_s * 1e6 / max(res.count, 1),
        scpu.server_cores,
        cpu.client_cores,
        max(0.0, cpu.busy_cores - cpu.server_cores - scpu.server_cores - cpu.client_cores),
        name,
    )


def print_log_tails(services: Sequence[Service]) -> None:
    """The last lines of each service's log (when a run fails)."""
    for svc in services:
        tail = svc.proc.log_tail(12)
        if tail:
            print(f"    {svc.workload}/{svc.arm} log tail:\n{tail}", flush=True)


def interleave(
    services: Sequence[Service],
    workloads: Mapping[str, str],
    arms: Sequence[str],
    data: Mapping[str, Path],
    rounds: int,
    seconds: float,
    out: Path,
    side: tuple[str, int] | None,
) -> list[Run]:
    """``rounds`` of every workload × calls in flight × arm, the arms' order rotated every
    round; ``side`` is the backend whose CPU is shown (name, pid)."""
    by_key = {(s.workload, s.arm): s for s in services}
    total = rounds * len(workloads) * len(CONCURRENCY) * len(arms)
    width = max(len(a) for a in arms)
    runs: list[Run] = []
    started = time.monotonic()
    for rnd in range(rounds):
        order = [*arms[rnd % len(arms) :], *arms[: rnd % len(arms)]]
        for workload, source in workloads.items():
            for conc in CONCURRENCY:
                for arm in order:
                    svc = by_key[(workload, arm)]
                    run = measure(
                        svc,
                        data[workload],
                        conc,
                        seconds,
                        rnd,
                        out,
                        source,
                        side[1] if side else None,
                    )
                    runs.append(run)
                    left = (time.monotonic() - started) / len(runs) * (total - len(runs))
                    shown = f"  {side[0]} {run.side_cores:.2f} cores" if side else ""
                    print(
                        f"[{len(runs):2d}/{total}] round {rnd + 1}/{rounds} {workload:4s} "
                        f"c={conc:<2} {arm:{width}s} {run.rps:7.0f}/s  p50 {run.p50_ms:.3f} ms"
                        f"  p99 {run.p99_ms:.3f} ms  server {run.server_cpu_us:.0f} µs/call"
                        f"{shown}  {source} {100 * run.expected_share:.1f}%  "
                        f"(~{left:.0f} s left)",
                        flush=True,
                    )
    return runs


def summarise(
    runs: Sequence[Run],
    workloads: Sequence[str],
    arms: Sequence[str],
    baseline: Mapping[str, str],
) -> dict[str, Any]:
    """Medians per workload and arm, with ratios to the arm's ``baseline`` arm (of the medians,
    and per round: each run against the baseline's run of the same round)."""
    out: dict[str, Any] = {}
    for workload in workloads:

        def pick(arm: str, conc: int, workload: str = workload) -> list[Run]:
            return [r for r in runs if (r.workload, r.arm, r.concurrency) == (workload, arm, conc)]

        out[workload] = {}
        for arm in arms:
            base64, base1 = pick(baseline[arm], 64), pick(baseline[arm], 1)
            base_rps = statistics.median(r.rps for r in base64)
            base_cpu = statistics.median(r.server_cpu_us for r in base64)
            base_p50 = statistics.median(r.p50_ms for r in base1)
            base_p99 = statistics.median(r.p99_ms for r in base1)
            base_by_round = {r.round: r.rps for r in base64}
            c64, c1 = pick(arm, 64), pick(arm, 1)
            rps = statistics.median(r.rps for r in c64)
            cpu = statistics.median(r.server_cpu_us for r in c64)
            p50 = statistics.median(r.p50_ms for r in c1)
            p99 = statistics.median(r.p99_ms for r in c1)
            out[workload][arm] = {
                "baseline": baseline[arm],
                "rps_c64": rps,
                "ratio_c64": rps / base_rps,
                "ratio_c64_by_round": [r.rps / base_by_round[r.round] for r in c64],
                "ratio_c64_paired": statistics.median(r.rps / base_by_round[r.round] for r in c64),
                "rps_c64_runs": [r.rps for r in c64],
                "server_cpu_us_c64": cpu,
                "server_cpu_ratio_c64": cpu / base_cpu,
                "side_cores_c64": statistics.median(r.side_cores for r in c64),
                "p50_ms_c1": p50,
                "p99_ms_c1": p99,
                "p50_delta_us_c1": (p50 - base_p50) * 1000,
                "p99_delta_us_c1": (p99 - base_p99) * 1000,
                "expected_share_min": min(r.expected_share for r in c64 + c1),
                "other_cores_max": max(r.other_cores for r in c64 + c1),
            }
    return out


def print_table(summary: Mapping[str, Any]) -> None:
    """The medians of :func:`summarise`, one line per workload and arm."""
    width = max(len(a) for arms in summary.values() for a in arms)
    print(
        f"\nworkload {'arm':{width}s}  c=64 calls/s (vs base)  server µs/call (vs base)  "
        "c=1 p50 / p99 ms (vs base)             c=64 vs base per round (median)"
    )
    for workload, arms in summary.items():
        for name, s in arms.items():
            rounds = ", ".join(f"{x:.3f}" for x in s["ratio_c64_by_round"])
            base = "" if s["baseline"] == name else f" vs {s['baseline']}"
            print(
                f"{workload:8s} {name:{width}s} {s['rps_c64']:8.0f} ({s['ratio_c64']:.3f}×)   "
                f"{s['server_cpu_us_c64']:6.0f} ({s['server_cpu_ratio_c64']:.3f}×)       "
                f"{s['p50_ms_c1']:.3f} / {s['p99_ms_c1']:.3f} "
                f"({s['p50_delta_us_c1']:+.0f} / {s['p99_delta_us_c1']:+.0f} µs)"
                f"   {rounds} ({s['ratio_c64_paired']:.3f}){base}"
            )


def draw_arms(
    axes: Any, summary: Mapping[str, Any], arms: Sequence[str], colours: Sequence[str]
) -> None:
    """Into column ``i`` of the 2-row ``axes`` (workload ``i`` of ``summary``): calls/s at 64
    in flight (each round a dot, the median a bar, its ratio to the arm's baseline above it),
    and p50 / p99 at 1 in flight."""
    names = list(arms)
    for col, (workload, found) in enumerate(summary.items()):
        ax = axes[0][col]
        bars_with_runs(
            ax,
            names,
            [found[n]["rps_c64"] for n in names],
            [found[n]["rps_c64_runs"] for n in names],
            [f"{found[n]['ratio_c64']:.3f}×" for n in names],
            colours,
        )
        ax.set_title(f"cache {workload}: calls/s at 64 in flight (median, rounds as dots)")
        ax.set_ylabel("calls/s")
        ax.set_ylim(0, max(max(found[n]["rps_c64_runs"]) for n in names) * 1.12)
        ax = axes[1][col]
        paired_bars(
            ax,
            names,
            [
                ([found[n]["p50_ms_c1"] for n in names], "p50", "tab:blue"),
                ([found[n]["p99_ms_c1"] for n in names], "p99", "tab:red"),
            ],
        )
        ax.set_title(f"cache {workload}: latency at 1 in flight (median)")
        ax.set_ylabel("ms")


def plot(out: Path, summary: Mapping[str, Any]) -> Path:
    """``tracing.png``: :func:`draw_arms`, a column per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(summary), figsize=(11, 7), squeeze=False)
    draw_arms(axes, summary, [a.name for a in ARMS], ["tab:gray", "tab:blue", "tab:orange"])
    for ax in axes.flat:
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Tracing off / on at sample ratio 0.01 / 1.0 (OTLP gRPC to Jaeger)")
    fig.tight_layout()
    path = out / "tracing.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def results_dir(out: Path | None, smoke: bool, prefix: str) -> Path:
    """``out``, else a temp dir (smoke), else ``benchmarks/results/<prefix>-<UTC>``."""
    stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
    found = out or (
        Path(tempfile.mkdtemp(prefix=f"routeiq-{prefix}-smoke-"))
        if smoke
        else REPO / "benchmarks" / "results" / f"{prefix}-{stamp}"
    )
    found.mkdir(parents=True, exist_ok=True)
    return found


def shown_path(out: Path) -> Path:
    """``out`` relative to the repository (results), else its name only (temp)."""
    return out.relative_to(REPO) if out.is_relative_to(REPO) else Path(out.name)


# -- tracing --------------------------------------------------------------------------------


def _config(workload: str, arm: Arm, metrics: int, jaeger: JaegerServer, work: Path) -> Path:
    tracing: dict[str, Any] = {"enabled": False}
    if arm.ratio is not None:
        tracing = {
            "enabled": True,
            "exporter": "otlp_grpc",
            "endpoint": jaeger.otlp_grpc,
            "sample_ratio": arm.ratio,
            "service_name": f"routeiq-bench-{workload}-{arm.slug}",
        }
    cfg = {
        "cache": {} if workload == "hit" else {"lru_max_entries": 0},
        "server": {"drain_delay_s": 0},  # stopped after its load is over: nothing to drain
        "metrics": {"host": "127.0.0.1", "port": metrics},
        "telemetry": {
            "outcomes_path": str(work / "outcomes.jsonl"),
            "events": {  # on, as by default, but written here rather than var/
                "path": str(work / f"events-{workload}-{arm.slug}.jsonl"),
                "hash_key_file": str(work / "prompt-hash.key"),
            },
            "tracing": tracing,
        },
        "log_level": "WARNING",
    }
    path = work / f"{workload}-{arm.slug}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _jaeger_traces(jaeger: JaegerServer, service: str, limit: int) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"service": service, "limit": limit, "lookback": "1h"})
    with urllib.request.urlopen(f"{jaeger.query}/api/traces?{query}", timeout=60) as reply:
        return list(json.load(reply)["data"] or [])


def _check_jaeger(jaeger: JaegerServer, services: list[Service]) -> dict[str, Any]:
    """What Jaeger holds per traced service: traces against calls and orphan traces (1 % arms:
    all of them), spans per trace (100 %: a sample)."""
    time.sleep(1.0)  # the services flushed their last spans when stopped; let Jaeger store them
    ratios = {a.name: a.ratio for a in ARMS}
    found: dict[str, Any] = {}
    for svc in services:
        ratio = ratios[svc.arm]
        if ratio is None:
            continue
        name = f"routeiq-bench-{svc.workload}-{svc.slug}"
        limit = 20 if ratio >= 0.5 else 100_000  # every 1 % trace; a sample of 100 %
        traces = _jaeger_traces(jaeger, name, limit)
        entry: dict[str, Any] = {
            "service": name,
            "calls": svc.calls,
            "spans_per_trace": sorted({len(t["spans"]) for t in traces}),
            "span_names": sorted({s["operationName"] for t in traces for s in t["spans"]}),
        }
        if limit > len(traces):  # all of them: how many hold a call's server span
            calls = sum(any(s["operationName"] == ROUTE_SPAN for s in t["spans"]) for t in traces)
            entry |= {
                "traces": len(traces),
                "call_traces": calls,
                "orphan_traces": len(traces) - calls,  # spans no sampled call holds: expected 0
                "sampled_share": calls / max(svc.calls, 1),
            }
        found[f"{svc.workload}/{svc.arm}"] = entry
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each arm (interleaved)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    ap.add_argument("--smoke", action="store_true", help="1 round of 1 s runs, results in temp")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/tracing-<UTC>")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.seconds = 1, 1.0
    if not (BUNDLE / "manifest.json").is_file():
        raise SystemExit("no default bundle: run `make bundle` first")
    out = results_dir(args.out, args.smoke, "tracing")
    work = Path(tempfile.mkdtemp(prefix="routeiq-tracing-bench-"))
    data = workload_data(work, WORKLOADS)
    quiet = wait_for_quiet(args.smoke)
    print(
        f"jaeger (OTLP gRPC, in-memory store) on CPU {CLIENT_CPU} at nice {SIDE_NICE}", flush=True
    )
    jaeger = JaegerServer()
    pin_threads(jaeger.proc.pid, CLIENT_CPU, SIDE_NICE)
    services: list[Service] = []
    runs: list[Run] = []
    dropped: dict[str, int] = {}
    jaeger_found: dict[str, Any] = {}
    try:
        for workload in WORKLOADS:
            for arm in ARMS:

                def config(metrics: int, workload: str = workload, arm: Arm = arm) -> Path:
                    return _config(workload, arm, metrics, jaeger, work)

                services.append(start_service(workload, arm.name, arm.slug, config, out))
                warm_up(services[-1], data[workload], out)
        names = [a.name for a in ARMS]
        runs = interleave(
            services,
            WORKLOADS,
            names,
            data,
            args.rounds,
            args.seconds,
            out,
            ("jaeger", jaeger.proc.pid),
        )
    except Exception:
        print_log_tails(services)
        raise
    finally:
        for svc in services:
            svc.proc.stop()
            if svc.proc.log_path.is_file():
                text = svc.proc.log_path.read_text(errors="replace")
                dropped[f"{svc.workload}/{svc.arm}"] = text.count("Queue full, dropping")
            svc.proc.compress_log()
        try:
            if runs:
                jaeger_found = _check_jaeger(jaeger, services)
        finally:
            if jaeger.log_path.is_file():
                (out / "jaeger.log.gz").write_bytes(gzip.compress(jaeger.log_path.read_bytes()))
            jaeger.stop()
            shutil.rmtree(work, ignore_errors=True)
    summary = summarise(runs, list(WORKLOADS), names, {n: "off" for n in names})
    for arms in summary.values():
        for name, entry in arms.items():
            entry["sample_ratio"] = next(a.ratio for a in ARMS if a.name == name)
    orphans = sum(e.get("orphan_traces", 0) for e in jaeger_found.values())
    result: dict[str, Any] = {
        "config": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "concurrency": list(CONCURRENCY),
            "exporter": "otlp_grpc (BatchSpanProcessor defaults) -> Jaeger, in-memory store",
            "server_cpu": SERVER_CPU,
            "client_cpu": CLIENT_CPU,
            "jaeger": f"CPU {CLIENT_CPU}, nice {SIDE_NICE}",
            "miss_prompts": MISS_PROMPTS,
            "out": str(shown_path(out)),
        },
        "machine": machine_info(),
        "quiet": asdict(quiet),
        "arms": summary,  # side_cores_c64: Jaeger's
        "jaeger": jaeger_found,
        "orphan_traces": orphans,
        "dropped_spans": dropped,
        "runs": [asdict(r) for r in runs],
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    plotted = plot(out, summary)
    print_table(summary)
    print("\nJaeger received:")
    for key, entry in jaeger_found.items():
        share = (
            f"{entry['call_traces']} traces of {entry['calls']} calls "
            f"({100 * entry['sampled_share']:.2f}%), orphan traces {entry['orphan_traces']}"
            if "traces" in entry
            else f"{entry['calls']} calls"
        )
        print(
            f"  {key:10s} {share}, spans per trace {entry['spans_per_trace']}, "
            f"dropped by the service {dropped.get(key, 0)}"
        )
    print(f"orphan traces (expected 0): {orphans}{'' if orphans == 0 else '  <- FAILED'}")
    print(f"results: {shown_path(out)} (plot: {plotted.name})")
    return 0 if orphans == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
