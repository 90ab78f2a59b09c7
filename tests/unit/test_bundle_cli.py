"""routeiq-bundle end to end on the generated dataset: train → eval → calibrate → convert."""

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import onnx
import pytest

from converters.cli import main
from converters.datasets.synthetic import write_synthetic
from converters.routers import save_skops, train_router
from router_service.bundles.loader import load_bundle
from router_service.bundles.verify import verify_bundle


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("data") / "synthetic.csv", n=1200)


@pytest.fixture(scope="module")
def bundle(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "linear"
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--format",
                "wide",
                "--router",
                "linear",
                "--featurizer",
                "tfidf",
                "--svd-dims",
                "64",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_train_writes_a_verified_bundle_with_provenance(bundle: Path) -> None:
    verified = verify_bundle(bundle, 1 << 30)
    m = verified.manifest
    assert m.models == ["small-fast", "coder", "frontier"]
    assert m.cost_unit == "usd_per_query"
    assert m.featurizer.kind == "tfidf" and m.featurizer.dim == 64
    assert set(m.files) == {"featurizer.onnx", "router.onnx"}
    assert m.provenance["parity"]["decision_agreement"] == 1.0
    assert m.provenance["parity"]["max_abs_diff"] < 1e-4
    assert m.provenance["featurizer_parity"]["min_cosine"] > 0.999
    assert m.calibration and m.default_cost_weight >= 0
    router = load_bundle(bundle, 1 << 30)
    assert router.name == "synthetic-linear-tfidf"


def test_eval_beats_random_and_writes_plot(
    bundle: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "curve.png"
    assert (
        main(
            [
                "eval",
                "--bundle",
                str(bundle),
                "--data",
                str(data),
                "--format",
                "wide",
                "--cost-weight",
                "0",
                "--plot",
                str(plot),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 240
    assert report["router"]["avg_quality"] > report["random"]["avg_quality"] + 0.05
    assert report["router"]["avg_quality"] <= report["oracle"]["avg_quality"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(report["curve"]) > 5


def test_calibrate_sets_default_cost_weight(bundle: Path, data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "b"
    import shutil

    shutil.copytree(bundle, copy)
    before = verify_bundle(copy, 1 << 30).manifest
    assert (
        main(
            [
                "calibrate",
                "--bundle",
                str(copy),
                "--data",
                str(data),
                "--format",
                "wide",
                "--target",
                "top-share:0.1",
            ]
        )
        == 0
    )
    after = verify_bundle(copy, 1 << 30).manifest
    assert after.version != before.version
    point = min(
        (p for p in after.calibration if p.top_cost_share <= 0.1), key=lambda p: p.cost_weight
    )
    assert after.default_cost_weight == pytest.approx(point.cost_weight)


def test_convert_refuses_pickle_without_opt_in(
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLMROUTER_ALLOW_PICKLE_MODELS", raising=False)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x04K\x01.")  # a valid pickle; it must never be read
    assert (
        main(
            ["convert", "--model", str(pkl), "--like", str(bundle), "--out", str(tmp_path / "out")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "refusing to unpickle" in err and "pickle runs arbitrary code" in err
    assert "--allow-pickle" in err and "allow=True" not in err  # the flag, not the argument
    assert not (tmp_path / "out").exists()


def test_convert_skops_estimator_with_parity(bundle: Path, data: Path, tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    trained = train_router("mlp", rng.standard_normal((200, 64)), rng.random((200, 3)), max_iter=50)
    model = save_skops(trained, tmp_path / "mlp.skops")
    out = tmp_path / "converted"
    assert (
        main(
            [
                "convert",
                "--model",
                str(model),
                "--like",
                str(bundle),
                "--out",
                str(out),
                "--data",
                str(data),
                "--format",
                "wide",
            ]
        )
        == 0
    )
    m = verify_bundle(out, 1 << 30).manifest
    assert m.router_kind == "mlp"
    assert m.provenance["parity"]["decision_agreement"] == 1.0
    assert (
        m.files["featurizer.onnx"]
        == verify_bundle(bundle, 1 << 30).manifest.files["featurizer.onnx"]
    )


def test_a_new_version_sorts_after_the_one_it_replaces_even_in_the_same_second() -> None:
    from converters.bundle import new_version

    assert new_version(after="20000101T000000Z") > "20000101T000000Z"
    later = "99991231T235959Z"  # a version made in this very second, or later
    assert new_version(after=later) == f"{later}.1"
    assert new_version(after=f"{later}.1") > f"{later}.1"


def test_train_without_test_rows_says_what_is_missing(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    with data.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    only_train = tmp_path / "train-only.csv"
    with only_train.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys([*rows[0], "split"])))
        writer.writeheader()
        writer.writerows({**row, "split": "train"} for row in rows)
    argv = ["train", "--data", str(only_train), "--format", "wide", "--router", "linear"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no test rows; training needs both splits" in err
    assert "0 sample" not in err


def _train(data: Path, out: Path, *extra: str) -> dict[str, Any]:
    argv = ["train", "--data", str(data), "--format", "wide", "--svd-dims", "64"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*argv, "--out", str(out), "--json", *extra]) == 0
    return json.loads(buf.getvalue())  # type: ignore[no-any-return]


def test_auto_picks_the_kind_that_gains_most_on_validation_and_says_why(
    data: Path, tmp_path: Path
) -> None:
    _train(data, tmp_path / "auto", "--router", "auto")
    m = verify_bundle(tmp_path / "auto", 1 << 30).manifest
    selection = m.provenance["selection"]
    gains = selection["mean_gain"]
    assert set(gains) == {"knn", "linear", "logistic"}
    assert selection["chosen"] == max(gains, key=gains.get) == m.router_kind
    assert m.name == f"synthetic-{m.router_kind}-tfidf"
    argv = ["train", "--data", str(data), "--format", "wide", "--router", "auto"]
    argv += ["--params", '{"alpha": 1}', "--out", str(tmp_path / "bad")]
    assert main(argv) == 2  # --params names one kind's parameters


def test_platt_calibration_is_part_of_the_exported_graph(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "platt"
    _train(data, out, "--router", "linear", "--calibration", "platt")
    m = verify_bundle(out, 1 << 30).manifest
    assert m.provenance["quality_calibration"] == "platt"
    graph = onnx.load(str(out / "router.onnx")).graph
    assert [n.op_type for n in graph.node][-3:] == ["Mul", "Add", "Sigmoid"]
    router = load_bundle(out, 1 << 30)
    assert router.featurizer is not None
    quality = router.strategy.predict(  # type: ignore[attr-defined]
        router.featurizer.featurize(["What is the capital of Peru?"])
    )
    assert ((quality > 0) & (quality < 1)).all()  # probabilities, unlike a raw ridge


def test_ood_holds_out_each_task_and_reports_what_survives(data: Path, tmp_path: Path) -> None:
    argv = ["ood", "--data", str(data), "--format", "wide", "--router", "linear"]
    argv += ["--plot", str(tmp_path / "ood.png")]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*argv, "--svd-dims", "32", "--json"]) == 0
    report = json.loads(buf.getvalue())
    assert sorted(f["fold"] for f in report["folds"]) == ["code", "math", "trivia", "writing"]
    assert report["rows"] == sum(f["rows"] for f in report["folds"])
    for side in ("in_domain", "out_of_domain"):
        assert 0.0 <= report[side]["avg_quality"] <= 1.0
    gain_in, gain_ood = (report[s]["mean_gain"] for s in ("in_domain", "out_of_domain"))
    assert report["survives"] == pytest.approx(gain_ood / gain_in)
    assert (tmp_path / "ood.png").stat().st_size > 10_000
    argv = ["ood", "--data", str(data), "--format", "wide", "--router", "tier"]
    assert main(argv) == 2  # the message says to use eval


def test_cv_scores_every_row_out_of_fold_and_tells_kinds_apart(data: Path, tmp_path: Path) -> None:
    from converters.datasets import load
    from converters.evaluation.cv import fold_of

    argv = ["cv", "--data", str(data), "--format", "wide", "--router", "fixed,linear"]
    argv += ["--folds", "3", "--svd-dims", "32", "--plot", str(tmp_path / "cv.png")]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*argv, "--json"]) == 0
    report = json.loads(buf.getvalue())
    assert report["rows"] == load(data, "wide").n_queries  # both splits, each row scored once
    fixed, linear = report["kinds"]["fixed"], report["kinds"]["linear"]
    for r in (fixed, linear):
        lo, hi = r["quality_interval"]
        assert lo < r["avg_quality"] < hi
        assert 0.0 <= r["max_cost_jump"] <= 1.0
        assert (r["worst_shortfall"] > 0) == bool(r["below_frontier"])
    assert fixed["mean_gain"] == pytest.approx(0.0, abs=1e-9)  # one model for every prompt
    d = report["versus_first"]["linear"]
    assert d["mean_gain"] == pytest.approx(linear["mean_gain"] - fixed["mean_gain"])
    assert d["gain_interval"][0] > 0.0  # the prompts carry signal: linear is better, surely
    assert (tmp_path / "cv.png").stat().st_size > 10_000
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    text = buf.getvalue()
    assert "3-fold cross-validation" in text and "linear − fixed: quality" in text
    with pytest.raises(SystemExit):
        main(["cv", "--data", str(data), "--format", "wide", "--router", "linear,tier"])
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_of(["a"], 1)
    folds = fold_of(["same", "other", "same"], 4)
    assert folds[0] == folds[2] and folds.min() >= 0 and folds.max() < 4
