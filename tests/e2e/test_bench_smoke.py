"""The benchmark harness in smoke mode, end to end: real service and echo processes, real ghz,
a tiny bundle trained on the generated dataset. Asserts that it ran and that its output parses
(numbers present and positive, no failed calls), not how fast anything is."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from converters.datasets.synthetic import write_synthetic
from tests.support.procs import REPO

pytestmark = pytest.mark.e2e

SMOKE_SCENARIOS = {"echo", "cache-hit", "static", "tfidf-miss", "batch4-miss"}


def _require_ghz() -> None:
    local = REPO / ".tools" / "bin" / "ghz"
    if not local.exists() and shutil.which("ghz") is None:
        pytest.fail(
            "ghz is not installed: run benchmarks/install_ghz.sh (builds it into .tools/bin)"
        )


def _tiny_bundle(tmp: Path) -> tuple[Path, Path]:
    data = write_synthetic(tmp / "synthetic.csv")
    bundle = tmp / "bundle"
    cli = Path(sys.executable).with_name("routeiq-bundle")
    args = ["--data", str(data), "--format", "wide", "--router", "linear", "--featurizer", "tfidf"]
    done = subprocess.run(
        [str(cli), "train", *args, "--svd-dims", "64", "--out", str(bundle)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return data, bundle


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_ghz()
    tmp = tmp_path_factory.mktemp("bench-smoke")
    data, bundle = _tiny_bundle(tmp)
    out = tmp / "results"
    argv = ["--smoke", "--out", str(out), "--data", str(data), "--format", "wide"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *argv, "--bundle", f"tfidf={bundle}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return out


def _results(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


def test_every_smoke_scenario_ran_without_failed_calls(smoke: Path) -> None:
    rows = _results(smoke)["rows"]
    assert {r["scenario"] for r in rows} == SMOKE_SCENARIOS
    for row in rows:
        assert row["concurrency"] == 1
        assert row["rps"] > 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
        assert row["errors"] == 0, row
    batch = next(r for r in rows if r["scenario"] == "batch4-miss")
    assert batch["decisions_per_s"] == pytest.approx(4 * batch["rps"])


def test_the_service_answered_from_the_expected_source(smoke: Path) -> None:
    for res in _results(smoke)["scenarios"]:
        scenario = res["scenario"]
        assert res["error"] == ""
        for run in res["runs"]:
            if scenario["expect"]:  # every answer counted by the service's own metrics
                assert set(run["sources"]) == {scenario["expect"]}, (scenario["name"], run)
                assert run["sources"][scenario["expect"]] >= run["ghz"]["ok"] * scenario["batch"]


def test_raw_ghz_reports_parse(smoke: Path) -> None:
    reports = sorted((smoke / "raw").glob("*-c1-r1.json.gz"))
    assert {p.name.removesuffix("-c1-r1.json.gz") for p in reports} == SMOKE_SCENARIOS
    for path in reports:
        report = json.loads(gzip.decompress(path.read_bytes()))
        assert report["count"] > 0
        assert report["rps"] > 0
        assert report["statusCodeDistribution"] == {"OK": report["count"]}
        p50 = next(d for d in report["latencyDistribution"] if d["percentage"] == 50)
        assert p50["latency"] > 0
        assert "data" not in report["options"]  # binary input: no prompt text in reports


def test_summary_has_the_table_baselines_and_plots(smoke: Path) -> None:
    summary = (smoke / "summary.md").read_text()
    assert "| scenario | concurrency | rps |" in summary
    for name in SMOKE_SCENARIOS:
        assert f"| {name} | 1 |" in summary
    assert "cpu: " in summary and "ghz version: " in summary
    baselines = _results(smoke)["baselines"]
    assert baselines["errors"] == {}
    for key in ("per_call_load", "loaded_once"):
        assert baselines["llmrouter"][key]["p50_us"] > 0
    for step in baselines["onnx_vs_sklearn"].values():
        assert step["sklearn"]["p50_us"] > 0 and step["onnx"]["p50_us"] > 0
    for png in ("latency.png", "throughput.png"):
        assert (smoke / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
