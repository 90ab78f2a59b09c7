"""Turning measurements into ``summary.md``, ``results.json`` and the PNG plots.

Every figure in a row is the median over the repeats of that scenario and concurrency; errors
are summed. Ratios compare figures measured in the same run.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import ScenarioResult

__all__ = ["Row", "aggregate", "load_results", "ratios", "write_results", "write_summary"]


@dataclass(frozen=True)
class Row:
    scenario: str
    title: str
    concurrency: int
    runs: int
    rps: float
    decisions_per_s: float
    p50_ms: float
    p99_ms: float
    avg_ms: float
    errors: int
    expected_share: float | None  # share of decisions from the expected source (0..1)
    server_cpu_us: float  # server CPU time per call
    server_cores: float
    client_cores: float
    other_cores: float
    load1: float


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def aggregate(results: Sequence[ScenarioResult]) -> list[Row]:
    rows = []
    for res in results:
        s = res.scenario
        for c in sorted({m.concurrency for m in res.runs}):
            runs = [m for m in res.runs if m.concurrency == c]
            decided = sum(sum(m.sources.values()) for m in runs)
            expected = sum(m.sources.get(s.expect, 0) for m in runs)
            rps = _median([m.ghz.rps for m in runs])
            share = expected / decided if s.expect and decided else None
            rows.append(
                Row(
                    scenario=s.name,
                    title=s.title,
                    concurrency=c,
                    runs=len(runs),
                    rps=rps,
                    decisions_per_s=rps * s.batch * (1.0 if share is None else share),
                    p50_ms=_median([m.ghz.p50_ms for m in runs]),
                    p99_ms=_median([m.ghz.p99_ms for m in runs]),
                    avg_ms=_median([m.ghz.avg_ms for m in runs]),
                    errors=sum(m.ghz.errors for m in runs),
                    expected_share=share,
                    server_cpu_us=_median([m.server_cpu_us for m in runs]),
                    server_cores=_median([m.server_cores for m in runs]),
                    client_cores=_median([m.client_cores for m in runs]),
                    other_cores=_median([m.other_cores for m in runs]),
                    load1=_median([m.load1 for m in runs]),
                )
            )
    return rows


def _find(rows: Sequence[Row], scenario: str, c: int) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.concurrency == c), None)


def _pairs(rows: Sequence[Row], top: str, bottom: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r.scenario != top:
            continue
        b = _find(rows, bottom, r.concurrency)
        if b is not None and b.decisions_per_s > 0 and r.p50_ms > 0:
            out.append(
                {
                    "concurrency": r.concurrency,
                    "rps_ratio": r.decisions_per_s / b.decisions_per_s,
                    "p50_ratio": r.p50_ms / b.p50_ms if b.p50_ms else None,
                    "p50_extra_us": (r.p50_ms - b.p50_ms) * 1000,
                }
            )
    return out


_RATIOS = (
    ("cache-hit vs echo", "cache-hit", "echo"),
    ("static vs echo", "static", "echo"),
    ("tfidf-miss vs echo", "tfidf-miss", "echo"),
    ("tfidf-miss vs cache-hit", "tfidf-miss", "cache-hit"),
    ("static-miss vs tfidf-miss", "static-miss", "tfidf-miss"),
    ("linear-tfidf-miss vs tfidf-miss", "linear-tfidf-miss", "tfidf-miss"),
    ("minilm-miss vs tfidf-miss", "minilm-miss", "tfidf-miss"),
    ("minilm-int8-miss vs minilm-miss", "minilm-int8-miss", "minilm-miss"),
    ("batch16 decisions vs tfidf-miss", "batch16-miss", "tfidf-miss"),
    ("2 workers vs 1 worker", "workers2-miss", "workers1-miss"),
    ("redis-hit vs lru-hit", "redis-hit", "lru-hit"),
    ("redis-miss vs tfidf-miss", "redis-miss", "tfidf-miss"),
)


def ratios(rows: Sequence[Row], baselines: dict[str, Any]) -> dict[str, Any]:
    """Same-run ratios: scenario pairs per concurrency, LLMRouter and ONNX vs scikit-learn."""
    out: dict[str, Any] = {}
    for label, top, bottom in _RATIOS:
        pairs = _pairs(rows, top, bottom)
        if pairs:
            out[label] = pairs
    llm = baselines.get("llmrouter")
    ours = _find(rows, "tfidf-miss", 1)
    onnx = baselines.get("onnx_vs_sklearn", {}).get("decision (featurize + router)")
    if llm and ours and ours.p50_ms > 0:
        out["LLMRouter per-call load vs ours (tfidf miss over gRPC, 1 in flight)"] = llm[
            "per_call_load"
        ]["p50_us"] / (ours.p50_ms * 1000)
        out["LLMRouter loaded once vs ours (tfidf miss over gRPC, 1 in flight)"] = llm[
            "loaded_once"
        ]["p50_us"] / (ours.p50_ms * 1000)
    if llm and onnx:
        out["LLMRouter per-call load vs our in-process ONNX decision"] = (
            llm["per_call_load"]["p50_us"] / onnx["onnx"]["p50_us"]
        )
    return out


def _fmt_share(share: float | None, expect: str) -> str:
    return "" if share is None else f"{expect} {100 * share:.0f}%"


def _scenario_table(rows: Sequence[Row], results: Sequence[ScenarioResult]) -> list[str]:
    expect = {r.scenario.name: r.scenario.expect for r in results}
    lines = [
        "| scenario | concurrency | rps | decisions/s | p50 ms | p99 ms | errors | source "
        "| server CPU µs/call | cores server / ghz / other | load1 |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.concurrency} | {r.rps:,.0f} | {r.decisions_per_s:,.0f} "
            f"| {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.errors} "
            f"| {_fmt_share(r.expected_share, expect[r.scenario])} | {r.server_cpu_us:,.0f} "
            f"| {r.server_cores:.2f} / {r.client_cores:.2f} / {r.other_cores:.2f} "
            f"| {r.load1:.2f} |"
        )
    return lines


def _scenario_notes(results: Sequence[ScenarioResult]) -> list[str]:
    lines = [
        "| scenario | what | waited for quiet (s) | busy before (cores) | load1 before | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for res in results:
        q = res.quiet
        waited = f"{q.waited_s:.0f}" if q else ""
        busy = f"{q.busy_cores:.2f}" if q else ""
        load = f"{q.load1:.2f}" if q else ""
        note = res.error or ("" if q is None or q.quiet else "not quiet (wait timed out)")
        lines.append(
            f"| {res.scenario.name} | {res.scenario.title} | {waited} | {busy} | {load} | {note} |"
        )
    return lines


def _ratio_lines(rat: dict[str, Any]) -> list[str]:
    lines = []
    for label, value in rat.items():
        if isinstance(value, list):
            parts = [
                f"c={p['concurrency']}: throughput x{p['rps_ratio']:.2f}, "
                f"p50 x{p['p50_ratio']:.2f} ({p['p50_extra_us']:+.0f} µs)"
                for p in value
                if p["p50_ratio"] is not None
            ]
            lines.append(f"- **{label}**: " + "; ".join(parts))
        else:
            lines.append(f"- **{label}**: x{value:.1f}")
    return lines


def _baseline_lines(baselines: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    llm = baselines.get("llmrouter")
    if llm:
        lines += [
            f"LLMRouter-style pickled kNN classifier ({llm['rows']} rows, pickle "
            f"{llm['pickle_mb']} MB), scikit-learn TF-IDF/SVD featurizer in memory, per decision:",
            "",
            "| variant | p50 µs | p90 µs | mean µs | calls |",
            "|---|---:|---:|---:|---:|",
        ]
        for key in ("per_call_load", "loaded_once"):
            t = llm[key]
            lines.append(
                f"| {key.replace('_', ' ')} | {t['p50_us']:,.1f} | {t['p90_us']:,.1f} "
                f"| {t['mean_us']:,.1f} | {t['n']} |"
            )
        lines.append("")
    onnx = baselines.get("onnx_vs_sklearn")
    if onnx:
        lines += [
            "scikit-learn vs ONNX Runtime (1 intra-op thread), one row per call, same prompts:",
            "",
            "| step | sklearn p50 µs | ONNX p50 µs | sklearn p90 µs | ONNX p90 µs | speed-up |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, v in onnx.items():
            sk, ox = v["sklearn"], v["onnx"]
            lines.append(
                f"| {name} | {sk['p50_us']:,.1f} | {ox['p50_us']:,.1f} | {sk['p90_us']:,.1f} "
                f"| {ox['p90_us']:,.1f} | x{v['speedup']:.1f} |"
            )
        lines.append("")
    for key, err in baselines.get("errors", {}).items():
        lines.append(f"- baseline {key} FAILED: {err}")
    return lines


def write_summary(
    out: Path,
    header: dict[str, Any],
    results: Sequence[ScenarioResult],
    rows: Sequence[Row],
    baselines: dict[str, Any],
) -> Path:
    """``summary.md`` from the runs and their :func:`aggregate` rows."""
    rat = ratios(rows, baselines)
    machine = header["machine"]
    lines = [
        f"# RouteIQ Router benchmark — {header['started']}",
        "",
        f"Mode: **{header['mode']}**; {header['load']}; {header['repeats']} run(s) per point "
        f"(table: medians; errors: sums). Command: `{header['command']}`.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in machine.items()),
        "",
        "## Load scenarios",
        "",
        *_scenario_table(rows, results),
        "",
        "rps: calls per second; decisions/s = rps x requests per call (RouteBatch) x the share "
        "from the expected source (fallback answers are not counted). source: share of the "
        "service's decisions (from its metrics) that came from the expected source; the rest "
        "are fallbacks (e.g. past `engine.offload_timeout_ms` under overload). server CPU "
        "µs/call: CPU time of the server process(es) (and Redis) per call during the run. cores: "
        "average CPU use during the run by the server, by ghz, and by processes this harness did "
        "not start (noise from other users of the machine). load1: 1-minute load average before "
        "the run.",
        "",
        *_scenario_notes(results),
        "",
        "## Ratios (same run)",
        "",
        *_ratio_lines(rat),
        "",
        "## Baselines (in process, same run)",
        "",
        *_baseline_lines(baselines),
        "## Files",
        "",
        "- `raw/*.json.gz`: ghz's JSON report of every run (gzipped), warm-ups included",
        "- `logs/*.log.gz`: the servers' own logs (no prompt text)",
        "- `results.json`: everything above, machine-readable",
        "- `latency.png`, `throughput.png`: plots",
        "",
    ]
    path = out / "summary.md"
    path.write_text("\n".join(lines))
    return path


def write_results(
    out: Path,
    header: dict[str, Any],
    results: Sequence[ScenarioResult],
    rows: Sequence[Row],
    baselines: dict[str, Any],
) -> Path:
    """``results.json``: the header, the :func:`aggregate` rows, the ratios and every run."""
    data = {
        **header,
        "rows": [asdict(r) for r in rows],
        "ratios": ratios(rows, baselines),
        "baselines": baselines,
        "scenarios": [
            {
                "scenario": asdict(res.scenario),
                "quiet": asdict(res.quiet) if res.quiet else None,
                "error": res.error,
                "runs": [asdict(m) for m in res.runs],
            }
            for res in results
        ],
    }
    path = out / "results.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def load_results(path: Path) -> tuple[dict[str, Any], list[ScenarioResult], dict[str, Any]]:
    """(header, scenario results, baselines) back from a ``results.json``."""
    from benchmarks.ghz import GhzResult
    from benchmarks.harness import Measurement
    from benchmarks.machine import QuietReport
    from benchmarks.scenarios import Scenario

    data = json.loads(path.read_text())
    header = {k: data[k] for k in ("started", "mode", "command", "load", "repeats", "machine")}
    results = []
    for item in data["scenarios"]:
        runs = [Measurement(**{**m, "ghz": GhzResult(**m["ghz"])}) for m in item["runs"]]
        quiet = QuietReport(**item["quiet"]) if item["quiet"] else None
        results.append(ScenarioResult(Scenario(**item["scenario"]), quiet, runs, item["error"]))
    return header, results, data["baselines"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report DIR``: rewrite DIR's summary.md and plots from its
    results.json (after a change to the report's layout)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m benchmarks.report RESULTS_DIR", file=sys.stderr)
        return 2
    from benchmarks.plots import write_plots

    out = Path(args[0])
    header, results, baselines = load_results(out / "results.json")
    rows = aggregate(results)
    print(write_summary(out, header, results, rows, baselines))
    names = [r.scenario.name for r in results if r.runs]
    for plot in write_plots(out, rows, names):
        print(plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
