"""RouteIQ Router load benchmark: ghz scenarios against the real service, with baselines
measured in the same run.

    python -m benchmarks.run            # full suite -> benchmarks/results/<UTC date-time>/
    python -m benchmarks.run --smoke    # a few seconds: tiny counts, 1 call in flight
    python benchmarks/run.py --scenarios cache-hit,tfidf-miss --concurrency 1,64 --repeats 1

Needs ghz (``benchmarks/install_ghz.sh``) and, for the Redis scenarios, ``redis-server``.
Writes ``summary.md`` (tables, ratios, machine), ``results.json``, ``latency.png``,
``throughput.png`` and every raw ghz report (``raw/*.json.gz``) into the output directory.
Before each scenario it waits (bounded) until the machine is quiet and records how busy it was.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report
from benchmarks.bundles import ensure_keyed, ensure_synthetic
from benchmarks.ghz import ghz_path, ghz_version
from benchmarks.harness import RunOptions, ScenarioResult, Workloads, run_scenario
from benchmarks.machine import loadavg, machine_info, wait_quiet
from benchmarks.plots import write_plots
from benchmarks.procs import REPO
from benchmarks.scenarios import FULL, SMOKE, Scenario
from benchmarks.workload import load_prompts
from converters.datasets import SHIPPED_DATA

DATA = SHIPPED_DATA


def _log(msg: str) -> None:
    print(msg, flush=True)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--smoke", action="store_true", help="a few seconds: tiny counts, c=1")
    p.add_argument("--out", type=Path, help="output directory (default: see above; smoke: temp)")
    names = ", ".join(dict.fromkeys(s.name for s in (*FULL, *SMOKE)))
    p.add_argument("--scenarios", help=f"comma-separated subset: {names}")
    p.add_argument("--concurrency", type=_ints, help="calls in flight (default 1,8,64,256)")
    p.add_argument("--repeats", type=int, help="runs per point; medians reported (default 3)")
    p.add_argument("--duration", type=float, help="seconds per run (full default 5)")
    p.add_argument("--total", type=int, help="requests per run instead of --duration")
    p.add_argument("--warmup", type=int, help="warm-up requests per scenario (default 500)")
    p.add_argument("--quiet-cores", type=float, default=0.3, help="'quiet': CPU busy <= this")
    p.add_argument("--quiet-max-wait", type=float, help="max wait for quiet, s (default 60)")
    p.add_argument("--data", type=Path, help="dataset for bundles and baselines")
    p.add_argument("--format", default=None, help="its format (llmrouter, wide, ...)")
    p.add_argument("--prompts", type=Path, nargs="+", help="prompt sources (dirs or files)")
    p.add_argument("--max-prompts", type=int, default=10_000)
    p.add_argument(
        "--bundle", action="append", default=[], metavar="KEY=DIR", help="use this bundle"
    )
    p.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="server on CPU 0, ghz on CPU 1 (taskset; default: on with 2+ CPUs and taskset)",
    )
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--baseline-prompts", type=int, help="prompts per baseline (default 200)")
    p.add_argument("--baseline-rounds", type=int, help="passes over them (default 2)")
    return p


def _defaults(args: argparse.Namespace) -> None:
    smoke = args.smoke
    args.concurrency = args.concurrency or ((1,) if smoke else (1, 8, 64, 256))
    args.repeats = args.repeats or (1 if smoke else 3)
    if args.total is None and args.duration is None:
        args.total, args.duration = (30, None) if smoke else (0, 5.0)
    args.total = args.total or 200  # unused when --duration is set
    args.warmup = args.warmup or (10 if smoke else 500)
    if args.quiet_max_wait is None:
        args.quiet_max_wait = 0.0 if smoke else 60.0
    args.baseline_prompts = args.baseline_prompts or (20 if smoke else 200)
    args.baseline_rounds = args.baseline_rounds or (1 if smoke else 2)
    if args.pin is None:
        args.pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if args.out is None:
        stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
        args.out = (
            Path(tempfile.mkdtemp(prefix="routeiq-bench-smoke-"))
            if smoke
            else REPO / "benchmarks" / "results" / stamp
        )


def _select(args: argparse.Namespace) -> list[Scenario]:
    pool = SMOKE if args.smoke else FULL
    if not args.scenarios:
        return list(pool)
    wanted = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    known = {s.name: s for s in (*FULL, *SMOKE)}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise SystemExit(f"unknown scenario(s): {', '.join(missing)}; known: {', '.join(known)}")
    return [known[w] for w in wanted]


def _bundles(args: argparse.Namespace, scenarios: Sequence[Scenario]) -> dict[str, Path]:
    """Bundle directories by key (see :data:`benchmarks.bundles.KEYS`), built when missing
    or stale."""
    given = dict(item.split("=", 1) for item in args.bundle)
    out = {k: Path(v) for k, v in given.items()}
    for key in sorted({s.bundle for s in scenarios} - set(out)):
        if args.smoke:
            out[key] = ensure_synthetic()[1]
        else:
            out[key] = ensure_keyed(key, args.data, args.format)
    return out


def _dataset_defaults(args: argparse.Namespace) -> None:
    if args.data is None:
        if args.smoke:
            args.data, args.format = ensure_synthetic()[0], "wide"
        else:
            args.data, args.format = DATA / "llmrouter", "llmrouter"
    args.format = args.format or ("wide" if args.data.is_file() else "llmrouter")
    if args.prompts is None:
        args.prompts = [args.data] if args.smoke else [DATA / "llmrouter", DATA / "routellm"]


def _versions() -> dict[str, str]:
    out = {"ghz": ghz_version()}
    for pkg in ("grpcio", "onnxruntime", "scikit-learn", "uvloop", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _header(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    load = f"{args.duration:g} s per run" if args.duration else f"{args.total} requests per run"
    one, five, fifteen = loadavg()
    machine = {
        **machine_info(),
        **{f"{k} version": v for k, v in _versions().items()},
        "load average at start (1/5/15 min)": f"{one:.2f} / {five:.2f} / {fifteen:.2f}",
        "quiet gate": f"CPU busy <= {args.quiet_cores} cores over 1 s, waited up to "
        f"{args.quiet_max_wait:g} s before each scenario",
        "pinning": "server on CPU 0, ghz on CPU 1 (taskset; multi-worker servers unpinned)"
        if args.pin
        else "none (server and ghz share the CPUs)",
    }
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "mode": "smoke" if args.smoke else "full",
        "command": " ".join(["python -m benchmarks.run", *(shlex.quote(a) for a in argv)]),
        "load": f"concurrency {','.join(map(str, args.concurrency))}; {load}",
        "repeats": args.repeats,
        "machine": machine,
    }


def _baselines(args: argparse.Namespace, bundle: Path, prompts: Sequence[str]) -> dict[str, Any]:
    from benchmarks.baselines import llmrouter_baseline, onnx_vs_sklearn
    from converters.datasets import load

    out: dict[str, Any] = {"errors": {}}
    q = wait_quiet(args.quiet_cores, args.quiet_max_wait)
    _log(f"== baselines (in process; busy {q.busy_cores:.2f} cores, load1 {q.load1:.2f})")
    out["quiet"] = q.__dict__
    ds = load(args.data, args.format)
    sample = list(prompts[: args.baseline_prompts])
    work = Path(tempfile.mkdtemp(prefix="routeiq-bench-baseline-"))  # the pickle, removed below
    steps: dict[str, Callable[[], Any]] = {
        "llmrouter": lambda: llmrouter_baseline(
            ds, bundle, work, sample, args.baseline_rounds, _log
        ),
        "onnx_vs_sklearn": lambda: onnx_vs_sklearn(ds, bundle, sample, args.baseline_rounds, _log),
    }
    for name, step in steps.items():
        try:
            out[name] = step()
        except Exception as exc:  # report it, keep the load results
            out["errors"][name] = f"{type(exc).__name__}: {exc}"
            _log(f"  baseline {name} FAILED: {out['errors'][name]}")
    shutil.rmtree(work, ignore_errors=True)
    llm = out.get("llmrouter")
    if llm:
        _log(
            f"  LLMRouter-style kNN: per-call load p50 {llm['per_call_load']['p50_us']:,.0f} µs, "
            f"loaded once p50 {llm['loaded_once']['p50_us']:,.0f} µs"
        )
    return out


def _finish(
    args: argparse.Namespace,
    header: dict[str, Any],
    results: list[ScenarioResult],
    baselines: dict[str, Any],
) -> int:
    rows = report.aggregate(results)  # once, for the summary, the JSON and the plots
    summary = report.write_summary(args.out, header, results, rows, baselines)
    report.write_results(args.out, header, results, rows, baselines)
    names = [r.scenario.name for r in results if r.runs]
    plots = write_plots(args.out, rows, names)
    failed = [r.scenario.name for r in results if r.error or not r.runs]
    errors = sum(m.ghz.errors for r in results for m in r.runs)
    _log("")
    _log(f"summary: {summary}")
    _log(f"plots:   {', '.join(str(p) for p in plots)}")
    for row in report.aggregate(results):
        _log(
            f"  {row.scenario:<18} c={row.concurrency:<3} {row.decisions_per_s:9,.0f} decisions/s"
            f"  p50 {row.p50_ms:7.3f} ms  p99 {row.p99_ms:7.3f} ms  errors {row.errors}"
        )
    if failed:
        _log(f"FAILED scenarios: {', '.join(failed)}")
    if errors:
        _log(f"{errors} calls failed in total (see the errors column)")
    bad_baselines = bool(baselines.get("errors"))
    return 1 if failed or bad_baselines or (args.smoke and errors) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    _defaults(args)
    ghz_path()  # fail early, with the install hint, when ghz is missing
    _dataset_defaults(args)
    scenarios = _select(args)
    args.out.mkdir(parents=True, exist_ok=True)
    raw, logs = args.out / "raw", args.out / "logs"
    raw.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    _log(f"RouteIQ benchmark ({'smoke' if args.smoke else 'full'}) -> {args.out}")
    header = _header(args, argv)
    bundles = _bundles(args, scenarios)
    prompts = load_prompts(args.prompts, args.max_prompts)
    _log(f"  {len(prompts)} distinct prompts; bundles: {', '.join(bundles)}")
    opts = RunOptions(
        concurrencies=args.concurrency,
        repeats=args.repeats,
        duration_s=args.duration,
        total=args.total,
        warmup_total=args.warmup,
        quiet_cores=args.quiet_cores,
        quiet_max_wait_s=args.quiet_max_wait,
        raw_dir=raw,
        log_dir=logs,
        pin=args.pin,
    )
    with tempfile.TemporaryDirectory(prefix="routeiq-bench-in-") as inputs:
        work = Workloads(bundles, prompts, Path(inputs))
        results = [run_scenario(s, opts, work, _log) for s in scenarios]
    baselines: dict[str, Any] = {}
    if not args.no_baselines:
        baselines = _baselines(args, bundles.get("tfidf") or next(iter(bundles.values())), prompts)
    return _finish(args, header, results, baselines)


if __name__ == "__main__":
    sys.exit(main())
