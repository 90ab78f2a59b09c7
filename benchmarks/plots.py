"""The PNG plots of a benchmark run (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import Row

__all__ = ["bars_with_runs", "paired_bars", "write_plots"]


def bars_with_runs(
    ax: Any,
    names: Sequence[str],
    medians: Sequence[float],
    runs: Sequence[Sequence[float]],
    labels: Sequence[str],
    colours: Sequence[str],
) -> None:
    """A bar per name at its median, each run a dot on it, ``labels`` above the highest dot."""
    bars = ax.bar(list(names), list(medians), color=list(colours))
    for i, values in enumerate(runs):
        ax.plot([i] * len(values), list(values), "k.", ms=4)
    for bar, values, label in zip(bars, runs, labels, strict=True):
        ax.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, max(values)),
            ha="center",
            va="bottom",
            fontsize=9,
            xytext=(0, 2),
            textcoords="offset points",
        )


def paired_bars(
    ax: Any,
    names: Sequence[str],
    pairs: Sequence[tuple[Sequence[float], str, str]],
) -> None:
    """Two bars per name, side by side: ``(values, label, colour)`` each, with a legend."""
    width = 0.38
    xs = list(range(len(names)))
    for offset, (values, label, colour) in zip((-width / 2, width / 2), pairs, strict=True):
        ax.bar([x + offset for x in xs], list(values), width, label=label, color=colour)
    ax.set_xticks(xs, list(names))
    ax.legend(fontsize=8)


def write_plots(out: Path, rows: Sequence[Row], names: Sequence[str]) -> list[Path]:
    """``latency.png`` (p50/p99 vs calls in flight, one panel per scenario) and
    ``throughput.png`` (decisions per second vs calls in flight, every scenario)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    if not names:
        return []
    cols = min(4, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        pts = [r for r in rows if r.scenario == name]
        cs = [r.concurrency for r in pts]
        ax.plot(cs, [r.p50_ms for r in pts], "o-", label="p50")
        ax.plot(cs, [r.p99_ms for r in pts], "s--", label="p99")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(cs)
        ax.xaxis.set_major_formatter(plain)
        ax.yaxis.set_major_formatter(plain)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("calls in flight")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    latency = out / "latency.png"
    fig.savefig(latency, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = plt.get_cmap("tab20")  # 20 colours: the dark shade of each pair, then dashed
    for i, name in enumerate(names):
        pts = [r for r in rows if r.scenario == name]
        style = "o-" if i < 10 else "s--"
        xs, ys = [r.concurrency for r in pts], [r.decisions_per_s for r in pts]
        ax.plot(xs, ys, style, color=cmap((2 * i) % 20), label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted({r.concurrency for r in rows}))
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.set_xlabel("calls in flight")
    ax.set_ylabel("decisions per second (median)")
    ax.set_title("Throughput per scenario")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    throughput = out / "throughput.png"
    fig.savefig(throughput, dpi=110)
    plt.close(fig)
    return [latency, throughput]
