"""The benchmark report's same-run ratios (benchmarks/report.py)."""

from __future__ import annotations

import dataclasses

from benchmarks.report import Row, ratios


def _row(scenario: str, concurrency: int, decisions: float, p50_ms: float) -> Row:
    return Row(
        scenario=scenario,
        title=scenario,
        concurrency=concurrency,
        runs=3,
        rps=decisions,
        decisions_per_s=decisions,
        p50_ms=p50_ms,
        p99_ms=p50_ms * 2,
        avg_ms=p50_ms,
        errors=0,
        expected_share=1.0,
        server_cpu_us=500.0,
        server_cores=1.0,
        client_cores=0.5,
        other_cores=0.0,
        load1=0.5,
    )


def test_ratios_compare_decisions_and_skip_a_baseline_that_decided_nothing() -> None:
    rows = [
        _row("echo", 1, 1000.0, 0.5),
        _row("cache-hit", 1, 800.0, 0.6),
        _row("minilm-miss", 64, 0.0, 50.0),  # every answer a fallback: 0 decisions/s
        _row("minilm-int8-miss", 64, 10.0, 40.0),
    ]
    out = ratios(rows, {})
    (hit,) = out["cache-hit vs echo"]
    assert hit["rps_ratio"] == 0.8 and round(hit["p50_extra_us"]) == 100
    assert "minilm-int8-miss vs minilm-miss" not in out  # no ratio against zero
    rows[2] = dataclasses.replace(rows[2], decisions_per_s=5.0)
    assert ratios(rows, {})["minilm-int8-miss vs minilm-miss"][0]["rps_ratio"] == 2.0
