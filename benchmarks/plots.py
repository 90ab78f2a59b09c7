"""The PNG plots of a benchmark run (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import Row

__all__ = ["write_plots"]


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
