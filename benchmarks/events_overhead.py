"""What decision events cost the service: cache-hit throughput and latency with events off, on
to a JSONL file, and on to a Redis stream, in one run; and how fast each store writes.

*Serving* (``--rounds`` of ``--seconds`` per arm): four service processes (the default bundle,
LRU on, one repeated prompt: every call after the first is a cache hit), tracing off:

* ``off``: ``telemetry.events.enabled: false``;
* ``jsonl``: events on (as by default), ``store: jsonl``, the file in a temp dir;
* ``redis-off``: ``cache.redis.url`` set (which also turns on the Redis cache tier behind the
  LRU), events off — the baseline of the next arm;
* ``redis``: the same Redis cache tier, events on, ``store: redis`` (``XADD … MAXLEN ~``).

``jsonl`` is compared with ``off`` and ``redis`` with ``redis-off``, so the Redis arm's ratio is
the events' alone. One redis-server (on a free port, started as the tests start theirs) serves
both Redis arms, on CPU 1 at ``nice 10`` beside ghz; the services are pinned to CPU 0 and ghz to
CPU 1. Rounds interleave the arms (order rotated every round), at 64 calls in flight (calls/s)
and at 1 (latency); medians with the ratio to the baseline arm, per round too. Afterwards it
checks that no event was dropped (``routeiq_events_dropped_total`` on each service's /metrics,
and the logs) and that the file / the stream holds one event per decision the service made.

*Writing* (``--events`` per store, ``--write-rounds`` times, in this process pinned to CPU 0):
realistic decision events — real LLMRouter prompts (hashed), the bundle's nine priced
candidates, a score per candidate, a request id and a tenant label — recorded into
:class:`~router_service.telemetry.events.DecisionEvents` with a buffer that holds them all,
then ``close()``: events/s from the first ``record()`` to the last line stored, the CPU this
process spent per event (``record()``, JSON, hash, store client), and bytes per event (the
file's, or the stream's ``MEMORY USAGE``).

Writes ``summary.json``, ``events.png``, ghz's raw reports and the logs; exits 1 when an event
was dropped or is missing.

    python -m benchmarks.events_overhead [--rounds 3] [--seconds 5] [--events 200000] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
import yaml

from benchmarks.machine import machine_info, proc_tree_seconds
from benchmarks.plots import bars_with_runs, paired_bars
from benchmarks.procs import scrape_metrics
from benchmarks.tracing_overhead import (
    BUNDLE,
    CLIENT_CPU,
    CONCURRENCY,
    DATA,
    SERVER_CPU,
    SIDE_NICE,
    Run,
    Service,
    draw_arms,
    interleave,
    pin_threads,
    print_log_tails,
    print_table,
    results_dir,
    shown_path,
    start_service,
    summarise,
    wait_for_quiet,
    warm_up,
    workload_data,
)
from benchmarks.workload import candidates_from_bundle, load_prompts
from router_service.domain import (
    Candidate,
    CandidateScore,
    Decision,
    Policy,
    QualityBasis,
    RouteInput,
    Source,
)
from router_service.telemetry.events import (
    DecisionEvents,
    EventStore,
    JsonlStore,
    RedisStreamStore,
    load_or_create_key,
)
from tests.support.redis import RedisServer

TARGET = 0.95  # events may cost at most 5 % of cache-hit throughput
WORKLOADS = {"hit": "CACHE"}
STREAM = "routeiq:bench:events"  # the serving arm's stream
WRITE_STREAM = "routeiq:bench:writes"  # the write-rate runs' stream
MAXLEN = 10_000_000  # far above what a run writes: the stream's count is the events written
MAX_BYTES = 1 << 40  # no rotation: the file's lines are the events written
FEED_PROMPTS = 2000
TENANTS = ("acme", "globex", "initech", "umbrella")


@dataclass(frozen=True)
class Arm:
    name: str  # shown, and the key in summary.json
    store: str | None  # telemetry.events.store; None: events off
    redis_cache: bool  # cache.redis.url set (the Redis cache tier)
    baseline: str  # the arm this one is compared with


ARMS = (
    Arm("off", None, False, "off"),
    Arm("jsonl", "jsonl", False, "off"),
    Arm("redis-off", None, True, "redis-off"),
    Arm("redis", "redis", True, "redis-off"),
)
COLOURS = ("tab:gray", "tab:blue", "silver", "tab:red")


@dataclass(frozen=True)
class WriteRun:
    store: str
    round: int
    events: int
    written: int  # counted by DecisionEvents
    stored: int  # lines in the file / entries in the stream
    dropped: int
    seconds: float  # first record() to the last event stored (close() returned)
    events_per_s: float
    record_us: float  # record() per event: what the answer's path pays
    cpu_us: float  # this process's CPU per event (all threads)
    redis_cpu_us: float  # redis-server's CPU per event (redis store; 0 for jsonl)
    bytes_per_event: float  # the file's size, or the stream's MEMORY USAGE, per event


# -- serving ---------------------------------------------------------------------------------


def _config(arm: Arm, metrics: int, redis_url: str, work: Path) -> Path:
    events: dict[str, Any] = {"enabled": arm.store is not None}
    if arm.store is not None:
        events |= {
            "store": arm.store,
            "path": str(work / f"events-{arm.name}.jsonl"),
            "max_bytes": MAX_BYTES,
            "redis_stream": STREAM,
            "redis_maxlen": MAXLEN,
            "hash_key_file": str(work / "prompt-hash.key"),
        }
    cfg = {
        "cache": {"redis": {"url": redis_url}} if arm.redis_cache else {},
        "server": {"drain_delay_s": 0},  # stopped after its load is over: nothing to drain
        "metrics": {"host": "127.0.0.1", "port": metrics},
        "telemetry": {"outcomes_path": str(work / "outcomes.jsonl"), "events": events},
        "log_level": "WARNING",
    }
    path = work / f"hit-{arm.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _counters(port: int) -> dict[str, float]:
    """Decisions made, events written and dropped so far, from the service's /metrics."""
    found = {"decisions": 0.0, "written": 0.0, "dropped": 0.0}
    for key, value in scrape_metrics([port]).items():
        for name, metric in (
            ("decisions", "routeiq_decisions_total"),
            ("written", "routeiq_events_written_total"),
            ("dropped", "routeiq_events_dropped_total"),
        ):
            if key == metric or key.startswith(metric + "{"):
                found[name] += value
    return found


def _stored(arm: Arm, work: Path, client: redis.Redis) -> tuple[int, float]:
    """Events the arm's store holds, and their bytes per event (file size, stream memory)."""
    if arm.store == "jsonl":
        files = sorted(work.glob(f"events-{arm.name}.jsonl*"))
        lines = sum(sum(1 for _ in f.open("rb")) for f in files)
        size = sum(f.stat().st_size for f in files)
        return lines, size / max(lines, 1)
    if arm.store == "redis":
        count = int(client.xlen(STREAM))
        memory = client.memory_usage(STREAM, samples=0) or 0
        return count, float(memory) / max(count, 1)
    return 0, 0.0


def _check(
    arm: Arm, svc: Service, counters: dict[str, float], work: Path, client: redis.Redis
) -> dict[str, Any]:
    """Nothing dropped, and one stored event per decision (the service was stopped: its last
    batch was written on the way out)."""
    log = gzip.decompress(svc.proc.log_path.with_suffix(".log.gz").read_bytes()).decode(
        errors="replace"
    )
    not_written = sum("not written" in line for line in log.splitlines())
    stored, per_event = _stored(arm, work, client)
    expected = int(counters["decisions"]) if arm.store is not None else 0
    ok = counters["dropped"] == 0 and not_written == 0 and stored == expected
    return {
        "decisions": int(counters["decisions"]),
        "written_metric": int(counters["written"]),  # before the service's last flush
        "dropped_metric": int(counters["dropped"]),
        "not_written_log_lines": not_written,
        "stored": stored,
        "bytes_per_event": per_event,
        "ok": ok,
    }


# -- writing ---------------------------------------------------------------------------------


def _feed(n: int, seed: int = 0) -> list[tuple[RouteInput, Decision]]:
    """``n`` realistic decisions: real prompts, the bundle's priced candidates, a float32
    score per candidate (as a model gives them), request ids and tenants."""
    router = json.loads((BUNDLE / "manifest.json").read_text())
    cands = tuple(Candidate(c.name, c.price, c.price) for c in candidates_from_bundle(BUNDLE))
    top = max(c.price or 0.0 for c in cands) or 1.0
    prompts = load_prompts([DATA], FEED_PROMPTS)
    rng = random.Random(seed)
    pool: list[tuple[str, tuple[CandidateScore, ...], str]] = []
    for prompt in prompts:
        quality = np.asarray([rng.random() for _ in cands], dtype=np.float32)
        cost = np.asarray([(c.price or 0.0) / top for c in cands], dtype=np.float32)
        scores = tuple(
            CandidateScore(c.name, float(q), float(q), float(k), QualityBasis.PREDICTED)
            for c, q, k in zip(cands, quality, cost, strict=True)
        )
        pool.append((prompt, scores, cands[int(np.argmax(quality))].name))
    labels = [{"tenant": t, "app": "chat"} for t in TENANTS]
    out = []
    for i in range(n):
        prompt, scores, model = pool[i % len(pool)]
        rid = f"req-{seed:02d}-{i:09d}"
        cached = rng.random() < 0.5
        req = RouteInput(
            rid, cands, router["name"], Policy(), prompt=prompt, labels=labels[i % len(labels)]
        )
        out.append(
            (
                req,
                Decision(
                    rid,
                    model,
                    scores,
                    router["name"],
                    str(router.get("version", "1")),
                    Source.CACHE if cached else Source.MODEL,
                    "cache" if cached else "best score",
                    rng.randint(150, 400) if cached else rng.randint(900, 3000),
                ),
            )
        )
    return out


async def _write(
    store: EventStore, feed: Sequence[tuple[RouteInput, Decision]], key: bytes
) -> tuple[DecisionEvents, float, float, float]:
    """Record every event of ``feed``, then close: (events, seconds in all, seconds spent in
    ``record()``, this process's CPU seconds)."""
    events = DecisionEvents(store, hash_key=key, buffer=len(feed))
    cpu0, t0 = time.process_time(), time.perf_counter()
    events.start()
    for req, decision in feed:
        events.record(req, decision, "champion")
    recorded = time.perf_counter()
    await events.close(timeout_s=3600)
    return events, time.perf_counter() - t0, recorded - t0, time.process_time() - cpu0


def _write_rates(
    feed: Sequence[tuple[RouteInput, Decision]],
    rounds: int,
    work: Path,
    server: RedisServer,
    progress: Callable[[WriteRun], None],
) -> list[WriteRun]:
    """Each store ``rounds`` times, alternating, in this process pinned to the server's CPU."""
    key = load_or_create_key(work / "prompt-hash.key")
    admin = redis.Redis.from_url(server.url, socket_timeout=30)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CPU})
    runs: list[WriteRun] = []
    try:
        for rnd in range(rounds):
            for name in ("jsonl", "redis"):
                store: EventStore
                if name == "jsonl":
                    path = work / f"writes-{rnd}.jsonl"
                    store = JsonlStore(path, MAX_BYTES, 0)
                else:
                    admin.delete(WRITE_STREAM)
                    client = redis.Redis.from_url(server.url, socket_timeout=5.0)
                    store = RedisStreamStore(client, WRITE_STREAM, MAXLEN)
                redis0 = proc_tree_seconds([_redis_pid(server)])
                events, seconds, recorded, cpu = asyncio.run(_write(store, feed, key))
                redis_s = proc_tree_seconds([_redis_pid(server)]) - redis0 if name == "redis" else 0
                if name == "jsonl":
                    stored = sum(1 for _ in path.open("rb"))
                    size = float(path.stat().st_size)
                    path.unlink()
                else:
                    stored = int(admin.xlen(WRITE_STREAM))
                    size = float(admin.memory_usage(WRITE_STREAM, samples=0) or 0)
                    admin.delete(WRITE_STREAM)
                n = len(feed)
                run = WriteRun(
                    name,
                    rnd,
                    n,
                    events.written,
                    stored,
                    events.dropped,
                    seconds,
                    n / seconds,
                    recorded * 1e6 / n,
                    cpu * 1e6 / n,
                    redis_s * 1e6 / n,
                    size / max(stored, 1),
                )
                runs.append(run)
                progress(run)
    finally:
        os.sched_setaffinity(0, affinity)
        admin.close()
    return runs


def _write_summary(writes: Sequence[WriteRun]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for store in ("jsonl", "redis"):
        mine = [w for w in writes if w.store == store]
        if not mine:
            continue
        rates = [w.events_per_s for w in mine]
        out[store] = {
            "events_per_s": statistics.median(rates),
            "events_per_s_runs": rates,
            "cpu_us_per_event": statistics.median(w.cpu_us for w in mine),
            "record_us_per_event": statistics.median(w.record_us for w in mine),
            "redis_cpu_us_per_event": statistics.median(w.redis_cpu_us for w in mine),
            "bytes_per_event": statistics.median(w.bytes_per_event for w in mine),
            "ok": all(w.stored == w.events == w.written and w.dropped == 0 for w in mine),
        }
    return out


# -- the run ---------------------------------------------------------------------------------


def _redis_pid(server: RedisServer) -> int:
    if server.proc is None:
        raise RuntimeError("redis-server is not running")
    return server.proc.pid


def _serve(
    args: argparse.Namespace, server: RedisServer, data: dict[str, Path], work: Path, out: Path
) -> tuple[list[Run], dict[str, Any]]:
    """The four services, the interleaved rounds, then the checks of what each one stored."""
    services: list[Service] = []
    counters: dict[str, dict[str, float]] = {}
    runs: list[Run] = []
    try:
        for arm in ARMS:

            def config(metrics: int, arm: Arm = arm) -> Path:
                return _config(arm, metrics, server.url, work)

            services.append(start_service("hit", arm.name, arm.name, config, out))
            warm_up(services[-1], data["hit"], out)
        names = [a.name for a in ARMS]
        side = ("redis", _redis_pid(server))
        runs = interleave(services, WORKLOADS, names, data, args.rounds, args.seconds, out, side)
        counters = {svc.arm: _counters(svc.metrics_port) for svc in services}
    except Exception:
        print_log_tails(services)
        raise
    finally:
        for svc in services:
            svc.proc.stop()  # writes the events still buffered
            svc.proc.compress_log()
    client = redis.Redis.from_url(server.url, socket_timeout=30)
    try:
        by_name = {svc.arm: svc for svc in services}
        checks = {a.name: _check(a, by_name[a.name], counters[a.name], work, client) for a in ARMS}
    finally:
        client.close()
    return runs, checks


def plot(out: Path, summary: dict[str, Any], writes: dict[str, Any]) -> Path:
    """``events.png``: the arms (calls/s at 64 in flight, latency at 1) and the stores' write
    rates and CPU per event."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), squeeze=False)
    draw_arms(axes, summary, [a.name for a in ARMS], COLOURS)
    stores = list(writes)
    ax = axes[0][1]
    bars_with_runs(
        ax,
        stores,
        [writes[s]["events_per_s"] for s in stores],
        [writes[s]["events_per_s_runs"] for s in stores],
        [
            f"{writes[s]['events_per_s']:,.0f}/s, {writes[s]['bytes_per_event']:.0f} B/event"
            for s in stores
        ],
        ["tab:blue", "tab:red"],
    )
    ax.set_title("stores: events written/s (one process; median, rounds as dots)")
    ax.set_ylabel("events/s")
    ax.set_ylim(0, max(max(writes[s]["events_per_s_runs"]) for s in stores) * 1.15)
    ax = axes[1][1]
    paired_bars(
        ax,
        stores,
        [
            ([writes[s]["cpu_us_per_event"] for s in stores], "writer's process CPU", "tab:purple"),
            ([writes[s]["redis_cpu_us_per_event"] for s in stores], "redis-server CPU", "tab:red"),
        ],
    )
    ax.set_title("stores: CPU per event written")
    ax.set_ylabel("µs")
    for ax in axes.flat:
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("Decision events off / to JSONL / to a Redis stream (cache hits)")
    fig.tight_layout()
    path = out / "events.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each arm (interleaved)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    ap.add_argument("--events", type=int, default=200_000, help="events per write-rate run")
    ap.add_argument("--write-rounds", type=int, default=3, help="write-rate runs per store")
    ap.add_argument(
        "--smoke", action="store_true", help="1 round of 1 s runs, 20,000 events, results in temp"
    )
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/events-<UTC>")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.seconds, args.events, args.write_rounds = 1, 1.0, 20_000, 1
    if not (BUNDLE / "manifest.json").is_file():
        raise SystemExit("no default bundle: run `make bundle` first")
    out = results_dir(args.out, args.smoke, "events")
    work = Path(tempfile.mkdtemp(prefix="routeiq-events-bench-"))
    data = workload_data(work, WORKLOADS)
    quiet = wait_for_quiet(args.smoke)
    print(f"redis-server on CPU {CLIENT_CPU} at nice {SIDE_NICE}", flush=True)
    server = RedisServer()
    writes: list[WriteRun] = []
    try:
        pin_threads(_redis_pid(server), CLIENT_CPU, SIDE_NICE)
        runs, checks = _serve(args, server, data, work, out)
        print(f"\nwrite rates: {args.events:,} decision events per store and round", flush=True)
        feed = _feed(args.events)

        def progress(w: WriteRun) -> None:
            print(
                f"  round {w.round + 1}/{args.write_rounds} {w.store:5s} "
                f"{w.events_per_s:9,.0f} events/s  ({w.seconds:.2f} s; stored {w.stored:,}, "
                f"dropped {w.dropped}; CPU {w.cpu_us:.1f} µs/event, record() "
                f"{w.record_us:.2f} µs, redis {w.redis_cpu_us:.1f} µs; "
                f"{w.bytes_per_event:.0f} B/event)",
                flush=True,
            )

        writes = _write_rates(feed, args.write_rounds, work, server, progress)
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    names = [a.name for a in ARMS]
    summary = summarise(runs, list(WORKLOADS), names, {a.name: a.baseline for a in ARMS})
    rates = _write_summary(writes)
    verdict: dict[str, Any] = {}
    for arm in ARMS:
        if arm.store is None:
            continue
        entry = summary["hit"][arm.name]
        base_rps = summary["hit"][arm.baseline]["rps_c64"]
        verdict[arm.name] = {
            "vs": arm.baseline,
            "ratio_c64": entry["ratio_c64"],
            "ratio_c64_by_round": entry["ratio_c64_by_round"],
            "target": TARGET,
            "met": entry["ratio_c64"] >= TARGET,
            # what the write-rate runs predict: the writer's CPU per event at the baseline's rate
            "predicted_core_share": rates[arm.store]["cpu_us_per_event"] * base_rps / 1e6,
        }
    checked = all(c["ok"] for c in checks.values()) and all(r["ok"] for r in rates.values())
    result: dict[str, Any] = {
        "config": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "concurrency": list(CONCURRENCY),
            "arms": {a.name: asdict(a) for a in ARMS},
            "server_cpu": SERVER_CPU,
            "client_cpu": CLIENT_CPU,
            "redis": f"CPU {CLIENT_CPU}, nice {SIDE_NICE}",
            "write_events": args.events,
            "write_rounds": args.write_rounds,
            "out": str(shown_path(out)),
        },
        "machine": machine_info(),
        "quiet": asdict(quiet),
        "arms": summary,  # side_cores_c64: redis-server's
        "target": verdict,
        "checks": checks,
        "write_rates": rates,
        "runs": [asdict(r) for r in runs],
        "write_runs": [asdict(w) for w in writes],
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    plotted = plot(out, summary, rates)
    print_table(summary)
    print(f"\ntarget: events cost at most {100 * (1 - TARGET):.0f} % of cache-hit calls/s")
    for name, v in verdict.items():
        rounds = ", ".join(f"{x:.3f}" for x in v["ratio_c64_by_round"])
        print(
            f"  {name:5s} vs {v['vs']:9s} {v['ratio_c64']:.3f}× (rounds {rounds}): "
            f"{'met' if v['met'] else 'NOT met'}; the write-rate runs predict "
            f"{100 * v['predicted_core_share']:.1f} % of a core"
        )
    print("\nstored events (expected: one per decision, none dropped):")
    for name, c in checks.items():
        print(
            f"  {name:9s} decisions {c['decisions']:7,}  stored {c['stored']:7,}  dropped "
            f"{c['dropped_metric']} (+{c['not_written_log_lines']} log lines)  "
            f"{c['bytes_per_event']:.0f} B/event  {'ok' if c['ok'] else 'FAILED'}"
        )
    print("\nwrite rates (median):")
    for store, r in rates.items():
        print(
            f"  {store:5s} {r['events_per_s']:9,.0f} events/s  CPU {r['cpu_us_per_event']:.1f} "
            f"µs/event (record() {r['record_us_per_event']:.2f} µs), redis-server "
            f"{r['redis_cpu_us_per_event']:.1f} µs/event, {r['bytes_per_event']:.0f} B/event  "
            f"{'ok' if r['ok'] else 'FAILED'}"
        )
    print(f"results: {shown_path(out)} (plot: {plotted.name})")
    return 0 if checked else 1


if __name__ == "__main__":
    raise SystemExit(main())
