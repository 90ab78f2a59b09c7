"""What one prompt costs each featurizer in process: the service's own featurizer objects, loaded
from bundles as the service loads them, one real prompt at a time.

LLMRouter's test prompts (median 174 characters), the process pinned to one CPU, timed two ways:
``blocks`` (each arm over all prompts in turn, arms alternating round by round: its tables warm
in the CPU caches, as when one router serves a stream of misses) and ``interleaved`` (arms
alternating prompt by prompt: each call finds the caches holding the other arms' tables, closer
to a miss that follows other work). For the tokenized
featurizers (static, MiniLM) the tokenization is also timed alone: the tokenizer's own
``encode`` against the word path the featurizer uses (same ids, checked here on every prompt).

    python -m benchmarks.featurizer_cost [--prompts 600] [--rounds 3] [--minilm]

Bundles (KNN on LLMRouter) are built once into ``benchmarks/.cache/bundles``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.bundles import ensure_bundle
from benchmarks.plots import paired_bars
from benchmarks.procs import REPO
from converters.datasets.llmrouter import load_llmrouter
from router_service.bundles.loader import load_bundle
from router_service.featurizers.base import Featurizer
from router_service.featurizers.minilm import MiniLMFeaturizer

DATA = REPO / "converters" / "data" / "llmrouter"
MAX_FILE_BYTES = 1 << 30


def _quantiles(samples: Sequence[float]) -> dict[str, float]:
    us = sorted(s * 1e6 for s in samples)
    return {
        "p50_us": statistics.median(us),
        "mean_us": statistics.fmean(us),
        "p99_us": us[min(len(us) - 1, int(0.99 * len(us)))],
    }


def _one_at_a_time(featurizer: Featurizer) -> Callable[[str], Any]:
    return lambda text: featurizer.featurize([text])


def _arms(kinds: Sequence[str]) -> dict[str, Callable[[str], Any]]:
    arms: dict[str, Callable[[str], Any]] = {}
    for kind in kinds:
        bundle = ensure_bundle(DATA, "llmrouter", kind)
        featurizer = load_bundle(bundle, MAX_FILE_BYTES).featurizer
        assert featurizer is not None, bundle
        arms[kind] = _one_at_a_time(featurizer)
        if isinstance(featurizer, MiniLMFeaturizer) and kind == "static":
            # the same graph run by ONNX Runtime (any other name keeps it there): the baseline
            onnxruntime = MiniLMFeaturizer(
                bundle / "featurizer.onnx", bundle / "tokenizer.json", name="static-graph"
            )
            arms["static, ONNX Runtime"] = _one_at_a_time(onnxruntime)
            arms["tokenize: encode"] = featurizer.token_ids.encoded
            arms["tokenize: word path"] = featurizer.token_ids.ids
    return arms


def _timed(
    arms: dict[str, Callable[[str], Any]], prompts: Sequence[str], rounds: int, mode: str
) -> dict[str, dict[str, float]]:
    """Per arm, p50/mean/p99 µs over ``rounds`` passes (after one uncounted warm-up pass)."""
    samples: dict[str, list[float]] = {name: [] for name in arms}

    def once(name: str, prompt: str, counted: bool) -> None:
        start = time.perf_counter()
        arms[name](prompt)
        if counted:
            samples[name].append(time.perf_counter() - start)

    for r in range(rounds + 1):
        print(f"  {mode}: round {r}/{rounds}", flush=True)
        if mode == "blocks":
            for name in arms:
                for prompt in prompts:
                    once(name, prompt, r > 0)
        else:
            for prompt in prompts:
                for name in arms:
                    once(name, prompt, r > 0)
    return {name: _quantiles(s) for name, s in samples.items()}


def _plot(modes: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """p50 per arm, blocks beside interleaved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(modes["blocks"])
    fig, ax = plt.subplots(figsize=(9, 4))
    paired_bars(
        ax,
        [n.replace(", ", ",\n").replace(": ", ":\n") for n in names],
        [
            ([modes["blocks"][n]["p50_us"] for n in names], "blocks (warm tables)", "tab:blue"),
            ([modes["interleaved"][n]["p50_us"] for n in names], "interleaved", "tab:orange"),
        ],
    )
    ax.set_ylabel("µs per prompt (p50)")
    ax.set_title("Featurizer cost per LLMRouter test prompt, in process, one CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--prompts", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--minilm", action="store_true", help="also the full MiniLM encoder (slow)")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/featurizers-<UTC>")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    data = load_llmrouter(DATA)
    prompts = [q for q, s in zip(data.queries, data.split, strict=True) if s == "test"]
    prompts = prompts[: args.prompts]
    kinds = ["tfidf", "static"] + (["minilm"] if args.minilm else [])
    arms = _arms(kinds)
    if "tokenize: word path" in arms:
        encode, words = arms["tokenize: encode"], arms["tokenize: word path"]
        wrong = sum(encode(p) != words(p) for p in prompts)
        if wrong:
            raise SystemExit(f"the word path gave other ids than encode for {wrong} prompts")
    modes = {mode: _timed(arms, prompts, args.rounds, mode) for mode in ("blocks", "interleaved")}
    summary: dict[str, Any] = {
        "prompts": len(prompts),
        "median_chars": statistics.median(len(p) for p in prompts),
        "rounds": args.rounds,
        "modes": modes,
    }
    print(f"\n{len(prompts)} LLMRouter test prompts x {args.rounds} rounds, one at a time")
    print(f"{'arm':22s} {'':12s} {'p50 µs':>8s} {'mean µs':>8s} {'p99 µs':>8s}")
    for mode, by_arm in modes.items():
        for name, q in by_arm.items():
            print(
                f"{name:22s} {mode:12s} {q['p50_us']:8.1f} {q['mean_us']:8.1f} {q['p99_us']:8.1f}"
            )
    stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
    out = args.out or REPO / "benchmarks" / "results" / f"featurizers-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(modes, out / "featurizers.png")
    print(f"results: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
