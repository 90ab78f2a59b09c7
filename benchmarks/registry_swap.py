"""Route latency while the registry swaps versions, against the same load without swaps.

One run: the service (pinned to CPU 0) follows a directory registry holding the default bundle
(KNN over TF-IDF); ghz (pinned to CPU 1) sends real LLMRouter prompts (prediction cache off,
so every call runs the featurizer and the router) in rounds of ``--seconds``. Rounds alternate
between *steady* (nothing published) and *swap* (a new version of the same bundle, signed,
published every ``--every`` seconds: each one is fetched, verified, loaded and warmed beside
the serving one, then swapped in). Reports p50/p99 and failed calls per kind of round, the
ratio swap/steady, and the swaps the service made (from its metrics).

    python -m benchmarks.registry_swap [--rounds 3] [--seconds 10] [--every 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.ghz import Load, pinned, run_ghz
from benchmarks.procs import REPO, Proc, free_ports, scrape_metrics, service_argv
from benchmarks.workload import (
    candidates_from_bundle,
    load_prompts,
    route_requests,
    write_delimited,
)
from converters.registry_ops import publish
from edge.devtools.processes import wait_serving
from router_service.bundles.signing import generate_keypair
from router_service.bundles.store import DirStore

BUNDLE = REPO / "var" / "bundles" / "default"
DATA = REPO / "converters" / "data" / "llmrouter"


def _calls(report: Path) -> tuple[list[float], list[float]]:
    """(start time in epoch seconds, latency in ms) of every call in a gzipped ghz report."""
    import datetime as dt
    import gzip

    details = json.loads(gzip.decompress(report.read_bytes())).get("details") or []
    starts, lat = [], []
    for d in details:
        stamp = d["timestamp"]  # RFC 3339 with nanoseconds: keep microseconds
        head, _, frac = stamp.rstrip("Z").partition(".")
        t = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
        starts.append(t + float(f"0.{frac or 0}"))
        lat.append(d["latency"] / 1e6)
    return starts, lat


def plot(out: Path, rounds: dict[str, Path], published: list[float]) -> Path:
    """``swap.png``: every call's latency over time in one steady and one swap round, with a
    rolling p99 and the moments versions were published."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, (kind, report) in zip(axes, rounds.items(), strict=True):
        starts, lat = _calls(report)
        if not starts:
            continue
        t0 = min(starts)
        x = np.array(starts) - t0
        y = np.array(lat)
        order = np.argsort(x)
        x, y = x[order], y[order]
        ax.scatter(x, y, s=2, alpha=0.25, label="calls")
        edges = np.arange(0, x[-1] + 0.25, 0.25)
        idx = np.digitize(x, edges)
        mids = [edges[i - 1] + 0.125 for i in sorted(set(idx)) if (idx == i).sum() >= 20]
        p99 = [np.percentile(y[idx == i], 99) for i in sorted(set(idx)) if (idx == i).sum() >= 20]
        ax.plot(mids, p99, "r-", label="p99 per 250 ms")
        if kind == "swap":
            for i, t in enumerate(p for p in published if t0 <= p <= t0 + x[-1]):
                ax.axvline(t - t0, color="k", ls=":", label="published" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_title(f"{kind} round")
        ax.set_xlabel("seconds into the round")
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("Route latency (ms)")
    fig.tight_layout()
    path = out / "swap.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each kind (interleaved)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one round")
    ap.add_argument("--every", type=float, default=2.0, help="swap rounds: seconds between swaps")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument(
        "--out", type=Path, help="results directory (default: benchmarks/results/swap-<UTC>)"
    )
    args = ap.parse_args(argv)
    if not (BUNDLE / "manifest.json").is_file():
        raise SystemExit("no default bundle: run `make bundle` first")
    out = (
        args.out
        or REPO
        / "benchmarks"
        / "results"
        / f"swap-{time.strftime('%Y-%m-%dT%H-%M-%SZ', time.gmtime())}"
    )
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="routeiq-swap-"))
    store = DirStore(work / "registry")
    key = work / "release"
    generate_keypair(key)
    publish(store, BUNDLE, key)
    port, metrics = free_ports(1), free_ports(1)
    config = {
        "registry": {"source": str(store.root), "poll_s": 1.0},
        "bundles": {"require_signature": True, "public_keys": [f"{key}.pub"]},
        "cache": {"lru_max_entries": 0},
        "metrics": {"host": "127.0.0.1", "port": metrics},
        "telemetry": {"outcomes_path": str(work / "outcomes.jsonl")},
        "log_level": "INFO",
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    prompts = load_prompts([DATA], 2000)
    router = json.loads((BUNDLE / "manifest.json").read_text())["name"]
    data = write_delimited(
        work / "requests.bin", route_requests(prompts, candidates_from_bundle(BUNDLE), router)
    )
    proc = Proc(pinned(service_argv(port, work / "config.yaml", [], 1), 0), out, "service", {})
    target = f"127.0.0.1:{port}"
    results: dict[str, list[Any]] = {"steady": [], "swap": []}
    swaps_made: list[int] = []
    published_at: list[float] = []
    try:
        wait_serving(target, proc.proc, timeout_s=60)
        load = Load("Route", data, args.concurrency, duration_s=args.seconds)
        run_ghz(load, target, out / "warmup.json.gz", cpu=1)
        for r in range(args.rounds):
            for kind in ("steady", "swap"):
                stop = threading.Event()
                published: list[int] = []
                thread = None
                if kind == "swap":

                    def publish_loop(
                        stop: threading.Event = stop, published: list[int] = published
                    ) -> None:
                        while not stop.wait(args.every):
                            published_at.append(time.time())
                            published.append(publish(store, BUNDLE, key).version)

                    thread = threading.Thread(target=publish_loop, daemon=True)
                    thread.start()
                res = run_ghz(load, target, out / f"{kind}-{r}.json.gz", cpu=1)
                stop.set()
                if thread is not None:
                    thread.join()
                    swaps_made.extend(published)
                results[kind].append(res)
                print(
                    f"round {r + 1}/{args.rounds} {kind:6s}: {res.rps:7.0f}/s  "
                    f"p50 {res.p50_ms:.2f} ms  p99 {res.p99_ms:.2f} ms  errors {res.errors}"
                    + (f"  published {len(published)}" if kind == "swap" else ""),
                    flush=True,
                )
        time.sleep(2.0)  # let the last publication be picked up before reading the metrics
        scraped = scrape_metrics([metrics])
    finally:
        proc.stop()
        proc.compress_log()
        shutil.rmtree(work, ignore_errors=True)
    swapped = sum(v for k, v in scraped.items() if k.startswith("routeiq_registry_swaps_total"))
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else Path(out.name)
    summary: dict[str, Any] = {"config": vars(args) | {"out": str(shown)}}
    for kind, rs in results.items():
        summary[kind] = {
            "rps": statistics.median(r.rps for r in rs),
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            "p99_ms_worst": max(r.p99_ms for r in rs),
            "errors": sum(r.errors for r in rs),
            "calls": sum(r.count for r in rs),
        }
    summary["p99_ratio"] = summary["swap"]["p99_ms"] / summary["steady"]["p99_ms"]
    summary["published"] = len(swaps_made)
    summary["swaps_served"] = swapped
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    last = args.rounds - 1
    plotted = plot(out, {k: out / f"{k}-{last}.json.gz" for k in ("steady", "swap")}, published_at)
    s, w = summary["steady"], summary["swap"]
    print(
        f"\nsteady: p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, {s['rps']:.0f}/s, "
        f"{s['errors']} failed of {s['calls']}\n"
        f"swap:   p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, {w['rps']:.0f}/s, "
        f"{w['errors']} failed of {w['calls']}\n"
        f"p99 swap/steady {summary['p99_ratio']:.2f}x; {len(swaps_made)} published, "
        f"{swapped:.0f} swapped in (champion swaps, start-up included)\nresults: {out} "
        f"(plot: {plotted.name})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
