"""Routers: per-model quality learning, ONNX export and parity, persistence, pickle opt-in."""

from __future__ import annotations

import pickle  # noqa: TID251 (writes the fixture for the opt-in loader test)
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

from converters.datasets import SHIPPED_DATA as DATA
from converters.onnx_common import ort_session
from converters.routers import (
    KINDS,
    PICKLE_ENV,
    PickleRefusedError,
    TrainedRouter,
    bradley_terry,
    load_pickle,
    load_skops,
    onnx_op_types,
    parity_check,
    router_op_types,
    save_skops,
    smooth_by_task,
    to_onnx,
    train_router,
)

# the tiny synthetic fits stop before sklearn's convergence tolerances; the results are checked
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
LEARNED = ("knn", "svm", "mlp", "linear", "mf")
FAST: dict[str, dict[str, Any]] = {
    "knn": {"n_neighbors": 15},
    "mlp": {"hidden_layer_sizes": [32], "max_iter": 300},
}


def _clusters(n: int, seed: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Three clusters in 8-d; model j is good (0.9) on cluster j and poor (0.1) elsewhere,
    with ties: model 2 is as good as model 0 on cluster 0."""
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8) * 3.0
    label = rng.integers(0, 3, n)
    X = centers[label] + rng.normal(0.0, 0.5, (n, 8))
    Y = np.full((n, 3), 0.1)
    Y[np.arange(n), label] = 0.9
    Y[label == 0, 2] = 0.9
    return X.astype(np.float32), Y.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.float32], ...]:
    X, Y = _clusters(400, seed=1)
    Xt, Yt = _clusters(200, seed=2)
    return X, Y, Xt, Yt


@pytest.mark.parametrize("kind", LEARNED)
def test_learned_routers_pick_the_right_model(
    kind: str, data: tuple[npt.NDArray[np.float32], ...]
) -> None:
    X, Y, Xt, Yt = data
    router = train_router(kind, X, Y, seed=0, **FAST.get(kind, {}))
    S = router.predict(Xt)
    assert S.shape == (200, 3) and S.dtype == np.float32
    chosen_quality = Yt[np.arange(len(Yt)), S.argmax(axis=1)]
    assert chosen_quality.mean() > 0.85  # oracle 0.9, any single model ≈ 0.37-0.63
    assert router.fit_seconds > 0 and router.n_features == 8 and router.n_models == 3


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_export_matches_and_uses_allowed_ops(
    kind: str, data: tuple[npt.NDArray[np.float32], ...]
) -> None:
    X, Y, Xt, _ = data
    router = train_router(kind, X, Y, seed=0, **FAST.get(kind, {}))
    model = to_onnx(router, 8)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["quality"]
    # the 8-d clusters are not unit-norm: distance-weighted knn uses the CDist graph
    assert onnx_op_types(model) <= router_op_types(kind, "cdist" if kind == "knn" else "")
    parity = parity_check(router, model, Xt)
    assert parity["max_abs_diff"] < 1e-4
    assert parity["decision_agreement"] == 1.0
    (single,) = ort_session(model).run(["quality"], {"features": Xt[:1]})
    assert single.shape == (1, 3)
    with pytest.raises(ValueError, match="trained on 8 features"):
        to_onnx(router, 9)


def test_linear_svm_exports_as_matmul_add(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    X, Y, Xt, _ = data
    router = train_router("svm", X, Y, kernel="linear", C=1.0)
    model = to_onnx(router, 8)
    assert onnx_op_types(model) == router_op_types("svm", "linear")
    assert parity_check(router, model, Xt)["max_abs_diff"] < 1e-4


def test_uniform_knn_uses_skl2onnx_cdist(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    X, Y, Xt, _ = data
    router = train_router("knn", X, Y, n_neighbors=15, weights="uniform")
    model = to_onnx(router, 8)
    assert onnx_op_types(model) == router_op_types("knn", "uniform")
    parity = parity_check(router, model, Xt)
    assert parity["max_abs_diff"] < 1e-5 and parity["decision_agreement"] == 1.0


def test_distance_knn_handles_exact_matches(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    X, Y, _, _ = data
    router = train_router("knn", X, Y, n_neighbors=15)
    assert router.params["weights"] == "distance"
    model = to_onnx(router, 8)
    assert ("com.microsoft", "CDist") in onnx_op_types(model)
    # training rows are their own nearest neighbour at distance 0: only that one counts
    parity = parity_check(router, model, X[:50])
    assert parity["max_abs_diff"] < 1e-5
    np.testing.assert_allclose(router.predict(X[:50]), Y[:50], atol=1e-6)
    with pytest.raises(ValueError, match="weights must be"):
        train_router("knn", X, Y, weights="gaussian")
    with pytest.raises(ValueError, match="unit-norm"):
        to_onnx(router, 8, knn_dot=True)


def _unit_rows(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    unit: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def test_unit_norm_knn_uses_inner_products(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    X, Y, Xt, _ = data
    X, Xt = _unit_rows(X), _unit_rows(Xt)
    X[7] = 0.0  # a training text without any known term
    X[9] = X[3]  # a duplicate training row
    router = train_router("knn", X, Y, n_neighbors=15)
    model = to_onnx(router, 8)
    ops = onnx_op_types(model)
    assert ops == router_op_types("knn")
    assert not any(domain == "com.microsoft" for domain, _ in ops)
    parity = parity_check(router, model, Xt)
    assert parity["max_abs_diff"] < 1e-5 and parity["tie_aware_agreement"] == 1.0
    # training rows are exact matches (distance 0): only they count, as in scikit-learn;
    # row 3 has a duplicate (row 9): the mean of both
    parity = parity_check(router, model, X[:50])
    assert parity["max_abs_diff"] < 1e-5
    np.testing.assert_allclose(router.predict(X[:2]), Y[:2], atol=1e-6)
    # an all-zero query is sqrt(|t|²) away from each row, as in scikit-learn
    zero = np.zeros((1, 8), dtype=np.float32)
    (got,) = ort_session(model).run(["quality"], {"features": zero})
    np.testing.assert_allclose(got, router.predict(zero), atol=1e-6)  # = Y[7], an exact match
    np.testing.assert_allclose(got[0], Y[7], atol=1e-6)
    # the CDist graph gives the same scores
    cdist = to_onnx(router, 8, knn_dot=False)
    assert ("com.microsoft", "CDist") in onnx_op_types(cdist)
    (a,) = ort_session(model).run(["quality"], {"features": Xt})
    (b,) = ort_session(cdist).run(["quality"], {"features": Xt})
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_mf_is_a_low_rank_linear_map(data: tuple[npt.NDArray[np.float32], ...]) -> None:
    X, Y, Xt, _ = data
    router = train_router("mf", X, Y, rank=2, alpha=1.0)
    assert router.weights is not None and router.bias is not None
    assert router.weights.shape == (8, 3)
    assert np.linalg.matrix_rank(router.weights, tol=1e-8) == 2
    w, v = router.extras["query_projection"], router.extras["model_embeddings"]
    np.testing.assert_allclose(router.weights, w @ v.T, atol=1e-12)
    np.testing.assert_allclose(router.predict(Xt), Xt @ router.weights + router.bias, atol=1e-5)
    model = to_onnx(router, 8)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    # the fit is at least as good as predicting the column means
    mse = float(((router.predict(X) - Y) ** 2).mean())
    assert mse < float(((Y - Y.mean(axis=0)) ** 2).mean()) * 0.5


def test_fixed_and_elo_are_constant_rankings() -> None:
    Y = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    X = np.zeros((4, 2), dtype=np.float32)
    fixed = train_router("fixed", X, Y)
    np.testing.assert_allclose(fixed.predict(X[:2]), [[0.75, 0.25, 0.375]] * 2)
    elo = train_router("elo", X, Y)
    scores = elo.predict(X[:1])[0]
    assert scores.argmax() == 0
    assert scores.min() > 0.0 and scores.max() < 1.0
    assert np.all(np.diff(elo.predict(X), axis=0) == 0)
    assert elo.extras["elo"][0] > elo.extras["elo"][1]


def test_bradley_terry_recovers_odds() -> None:
    wins = np.array([[0.0, 30.0], [10.0, 0.0]])
    theta = bradley_terry(wins, prior=0.0)
    assert theta[0] - theta[1] == pytest.approx(np.log(3.0), rel=1e-6)
    assert theta.sum() == pytest.approx(0.0, abs=1e-12)
    three = bradley_terry(np.array([[0.0, 8, 9], [2, 0, 6], [1, 4, 0]]))
    assert list(np.argsort(-three)) == [0, 1, 2]


def test_smooth_by_task_shrinks_toward_the_task_mean() -> None:
    Y = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    out = smooth_by_task(Y, ["a", "a", "b"], weight=0.5)
    np.testing.assert_allclose(out, [[0.75, 0.0], [0.25, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(smooth_by_task(Y, ["a", "a", "b"], weight=1.0), Y)
    with pytest.raises(ValueError, match="one task per row"):
        smooth_by_task(Y, ["a"], weight=0.5)


def test_train_router_validates_inputs() -> None:
    with pytest.raises(ValueError, match="unknown router kind"):
        train_router("forest", np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"need X \[n, d\]"):
        train_router("linear", np.zeros((3, 2)), np.zeros((2, 2)))
    router = train_router("linear", np.eye(3, 2), np.eye(3, 2))
    with pytest.raises(ValueError, match=r"expected features \[n, 2\]"):
        router.predict(np.zeros((1, 3)))


@pytest.mark.parametrize("kind", KINDS)
def test_skops_round_trip(
    kind: str, tmp_path: Path, data: tuple[npt.NDArray[np.float32], ...]
) -> None:
    X, Y, Xt, _ = data
    router = train_router(kind, X, Y, seed=0, **FAST.get(kind, {}))
    back = load_skops(save_skops(router, tmp_path / "router.skops"))
    assert (back.kind, back.n_features, back.n_models) == (kind, 8, 3)
    assert back.params == router.params
    np.testing.assert_array_equal(back.predict(Xt), router.predict(Xt))


def test_skops_refuses_types_outside_the_allow_list(tmp_path: Path) -> None:
    X, _ = _clusters(50, seed=3)
    pipe = Pipeline([("scale", StandardScaler())]).fit(X)
    router = TrainedRouter("linear", 8, 3, {}, estimator=pipe)
    path = save_skops(router, tmp_path / "evil.skops")
    with pytest.raises(ValueError, match=r"refusing untrusted types \['sklearn.pipeline.Pipeline'"):
        load_skops(path)


def test_pickle_needs_an_explicit_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    monkeypatch.delenv(PICKLE_ENV, raising=False)
    with pytest.raises(PickleRefusedError, match="pickle runs arbitrary code") as info:
        load_pickle(path)
    assert PICKLE_ENV in str(info.value) and "skops" in str(info.value)
    monkeypatch.setenv(PICKLE_ENV, "false")
    with pytest.raises(PickleRefusedError):
        load_pickle(path)
    assert load_pickle(path, allow=True) == {"weights": [1, 2, 3]}
    monkeypatch.setenv(PICKLE_ENV, "TRUE")
    assert load_pickle(path) == {"weights": [1, 2, 3]}


def test_real_llmrouter_routers_beat_random_and_match_onnx() -> None:
    from converters.datasets import load_llmrouter
    from converters.features.tfidf import TfidfConfig, fit_tfidf

    ds = load_llmrouter(DATA / "llmrouter")
    train, test = ds.train(), ds.test()
    featurizer = fit_tfidf(train.queries, TfidfConfig(max_features=3000, svd_dims=48))
    X, Xt = featurizer.transform(train.queries), featurizer.transform(test.queries)
    best_single = float(test.quality[:, train.quality.mean(axis=0).argmax()].mean())
    assert best_single == pytest.approx(0.563, abs=1e-3)
    for kind, params in (("linear", {}), ("knn", {"n_neighbors": 50}), ("mf", {})):
        router = train_router(kind, X, train.quality, seed=0, **params)
        S = router.predict(Xt)
        quality = float(test.quality[np.arange(len(Xt)), S.argmax(axis=1)].mean())
        assert quality > best_single - 0.02, kind  # random pick is 0.376
        model = to_onnx(router, X.shape[1])
        parity = parity_check(router, model, Xt)
        if kind == "knn":
            assert onnx_op_types(model) == router_op_types("knn")  # unit-norm: inner products
            # float32 inner products vs float64 sklearn distances may swap near-tied 50th/51st
            # neighbours, which moves a distance-weighted mean by a few hundredths
            assert parity["max_abs_diff"] <= 0.05
            # exact-duplicate test queries copy their (often tied) training labels
            assert parity["tie_aware_agreement"] >= 0.98
        else:
            assert parity["max_abs_diff"] < 1e-4 and parity["decision_agreement"] == 1.0
