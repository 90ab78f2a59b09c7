"""Profile the service under load: start a scenario's server, load it with ghz, and sample it
with py-spy (not a project dependency: install it anywhere, e.g. a separate venv).

    python -m benchmarks.profile_service --scenario cache-hit --py-spy PATH/TO/py-spy
    python -m benchmarks.profile_service --scenario tfidf-miss --concurrency 8 --gil --out profiles/

Writes ``<scenario>.svg`` (flame graph) and ``<scenario>.txt`` (collapsed stacks) into
``--out`` and prints the functions with the most samples, by own time and including callees.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bundles import ensure_keyed
from benchmarks.ghz import Load, run_ghz
from benchmarks.harness import Workloads, serve_scenario
from benchmarks.scenarios import FULL, Scenario
from benchmarks.workload import load_prompts
from converters.datasets import SHIPPED_DATA

DATA = SHIPPED_DATA


def top_frames(collapsed: Path, n: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(own, inclusive) shares of samples per frame, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            incl[frame] += int(count)
    share = 1 / max(total, 1)
    return (
        [(f, c * share) for f, c in own.most_common(n)],
        [(f, c * share) for f, c in incl.most_common(n)],
    )


def _py_spy(
    path: str, pid: int, seconds: float, out: Path, fmt: str, args: argparse.Namespace
) -> None:
    argv = [path, "record", "--pid", str(pid), "--duration", str(int(seconds))]
    argv += ["--rate", str(args.rate)] + (["--gil"] if args.gil else [])
    argv += ["--format", fmt, "--output", str(out), "--subprocesses"]  # workers too
    # --native needs to pause the process to unwind C stacks; without it, don't pause
    argv.append("--native" if args.native else "--nonblocking")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def profile(scenario: Scenario, args: argparse.Namespace) -> None:
    bundles = {scenario.bundle: ensure_keyed(scenario.bundle, DATA / "llmrouter", "llmrouter")}
    prompts = load_prompts([DATA / "llmrouter", DATA / "routellm"], 10_000)
    work = Workloads(bundles, prompts, Path(tempfile.mkdtemp(prefix="routeiq-prof-")))
    args.out.mkdir(parents=True, exist_ok=True)
    with serve_scenario(scenario, bundles, args.out) as server:
        data = work.file(scenario)
        warm = Load(scenario.method, data, 8, scenario.connections, total=2000)
        run_ghz(warm, server.target, args.out / "warmup.json.gz")
        load = Load(
            scenario.method,
            data,
            args.concurrency,
            scenario.connections,
            duration_s=2 * args.seconds + 6,
        )
        result: dict[str, object] = {}

        def drive() -> None:
            result["ghz"] = run_ghz(load, server.target, args.out / f"{scenario.name}.json.gz")

        thread = threading.Thread(target=drive, daemon=True)
        thread.start()
        pid = server.pids[0]
        svg, txt = args.out / f"{scenario.name}.svg", args.out / f"{scenario.name}.txt"
        _py_spy(args.py_spy, pid, args.seconds, txt, "raw", args)
        _py_spy(args.py_spy, pid, args.seconds, svg, "flamegraph", args)
        thread.join()
    print(f"{scenario.name} at {args.concurrency} in flight: {result.get('ghz')}")
    own, incl = top_frames(txt, args.top)
    print("top by own samples:")
    for frame, share in own:
        print(f"  {100 * share:5.1f}%  {frame}")
    print("top including callees:")
    for frame, share in incl:
        print(f"  {100 * share:5.1f}%  {frame}")
    print(f"collapsed stacks: {txt}; flame graph: {svg}")


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.split("\n\n")[0]
    p = argparse.ArgumentParser(prog="benchmarks.profile_service", description=summary)
    names = [s.name for s in FULL if s.server == "service"]
    p.add_argument("--scenario", default="cache-hit", choices=names)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy binary")
    p.add_argument("--native", action="store_true", help="C/C++ frames (pauses the process)")
    p.add_argument("--gil", action="store_true", help="only samples of the thread holding the GIL")
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="routeiq-prof-")))
    args = p.parse_args(argv)
    profile(next(s for s in FULL if s.name == args.scenario), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
