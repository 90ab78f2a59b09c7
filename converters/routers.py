"""Learned routers: per-model quality predictors trained on features, exported to ONNX.

Every router maps features ``X`` float32 ``[n, d]`` to predicted quality ``S`` float32
``[n, m]`` (one column per model, the dataset's column order; higher is better, roughly on the
0..1 quality scale). None predicts a single "best model" label: the data has many ties at the
top, which makes such labels collapse onto whichever model wins ties.

Kinds (:data:`KINDS`):

* ``knn`` — :class:`~sklearn.neighbors.KNeighborsRegressor` (multi-output, k = 50,
  ``weights="distance"`` by default). ``weights="uniform"`` is exported by skl2onnx with its
  ``{"optim": "cdist"}`` option (com.microsoft ``CDist``). ``"distance"`` is exported by our
  own graphs, because skl2onnx 1.20 converts distance weights wrongly for multi-output
  regressors: when every training row is unit-norm or zero (L2-normalised TF-IDF/SVD and
  MiniLM features), :func:`_knn_dot_graph` — the neighbours by inner product (one MatMul,
  TopK; standard domain only, ~8x faster than CDist for one row over 5.6k × 256 rows);
  otherwise :func:`_knn_distance_graph` (com.microsoft CDist + TopK + weighted mean).
* ``svm`` — one :class:`~sklearn.svm.SVR` (RBF) per model in a
  :class:`~sklearn.multioutput.MultiOutputRegressor`; skl2onnx emits ``ai.onnx.ml``
  ``SVMRegressor`` per model and a ``Concat``. ``params={"kernel": "linear"}`` uses one
  :class:`~sklearn.svm.LinearSVR` per model instead, exported as a ``MatMul``+``Add``.
* ``mlp`` — :class:`~sklearn.neural_network.MLPRegressor`, exported by :func:`_mlp_graph` as
  ``MatMul``/``Add``/activation layers (skl2onnx 1.20's MLPRegressor converter reshapes
  multi-output predictions to ``[n*m, 1]``, a bug, so it is not used).
* ``linear`` — multi-output :class:`~sklearn.linear_model.Ridge`, exported as ``MatMul``+``Add``.
* ``mf`` — matrix factorisation: query projection ``W [d, k]``, model embeddings ``V [m, k]``
  and bias ``b [m]``, ``S = (X W) Vᵀ + b``, fitted by alternating ridge least squares in numpy;
  exported as the linear map it is (``A = W Vᵀ``): one ``MatMul`` and one ``Add``.
* ``fixed`` — the per-model mean training quality, the same for every query.
* ``elo`` — a constant ranking from Bradley–Terry strengths fitted on pairwise wins in the
  training data (model i beats j on a query when its quality is strictly higher; ties are
  skipped). The score of a model is its expected win rate against a uniformly drawn other
  model, ``mean_j σ(θ_i − θ_j)``, in (0, 1).
  ``fixed`` and ``elo`` graphs broadcast the constant row to the batch:
  ``Shape``/``Concat``/``Expand``.

ONNX contract (:func:`to_onnx`): input ``features`` float32 ``[None, d]``, output ``quality``
float32 ``[None, m]``; target opset :data:`OPSET`, IR version :data:`IR_VERSION`.
:func:`router_op_types` lists the ``(domain, op_type)`` pairs each kind can emit.

Persistence: :func:`save_skops` / :func:`load_skops` (skops, with an explicit allow-list of
types, :data:`SKOPS_TRUSTED_TYPES`); :func:`load_pickle` exists only for third-party pickles
and refuses unless explicitly allowed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import Ridge
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.svm import SVR, LinearSVR

from converters.tfidf import IR_VERSION, ML_OPSET, OPSET, onnx_op_types, ort_session

__all__ = [
    "KINDS",
    "PICKLE_ENV",
    "SKOPS_TRUSTED_TYPES",
    "PickleRefusedError",
    "TrainedRouter",
    "bradley_terry",
    "load_pickle",
    "load_skops",
    "onnx_op_types",
    "parity_check",
    "router_op_types",
    "save_skops",
    "smooth_by_task",
    "to_onnx",
    "train_router",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

KINDS = ("knn", "svm", "mlp", "linear", "mf", "elo", "fixed")
PICKLE_ENV = "LLMROUTER_ALLOW_PICKLE_MODELS"
#: Neighbours closer than this × max(1, largest training-row norm) count as exact matches in
#: the distance-weighted kNN graph. onnxruntime's float32 CDist returns ~6e-4 (not 0) for an
#: identical unit-norm row; distinct L2-normalised TF-IDF rows are typically 0.03–1.4 apart.
KNN_EXACT_DISTANCE = 1e-3
#: Weight of an exact match in the inner-product kNN graph: other neighbours weigh at most
#: 1 / KNN_EXACT_DISTANCE = 1e3, so their share is below float32 resolution (valid for
#: |quality| < 1e16).
KNN_EXACT_WEIGHT = 1e20
#: Training rows whose l2 norm is within this of 1 (or exactly 0) allow the inner-product kNN
#: graph; normalised TF-IDF/SVD and MiniLM vectors are within ~1e-7.
KNN_UNIT_NORM_TOL = 1e-4
#: Scores this close count as a tie in :func:`parity_check`'s ``tie_aware_agreement``.
DECISION_TIE_TOL = 1e-5

_LINEAR_OPS = frozenset({("", "MatMul"), ("", "Add")})
_CONST_OPS = frozenset({("", "Shape"), ("", "Concat"), ("", "Expand")})
_OP_TYPES: dict[str, frozenset[tuple[str, str]]] = {
    "knn": frozenset(
        {
            ("", "MatMul"),
            ("", "Sub"),
            ("", "TopK"),
            ("", "ReduceSumSquare"),
            ("", "Less"),
            ("", "Max"),
            ("", "Pow"),
            ("", "Where"),
            ("", "Gather"),
            ("", "Einsum"),
            ("", "ReduceSum"),
            ("", "Div"),
        }
    ),
    "knn-cdist": frozenset(
        {
            ("com.microsoft", "CDist"),
            ("", "TopK"),
            ("", "Less"),
            ("", "Cast"),
            ("", "ReduceMax"),
            ("", "Max"),
            ("", "Reciprocal"),
            ("", "Where"),
            ("", "Gather"),
            ("", "Unsqueeze"),
            ("", "Mul"),
            ("", "ReduceSum"),
            ("", "Div"),
        }
    ),
    "knn-uniform": frozenset(
        {
            ("com.microsoft", "CDist"),
            ("", "TopK"),
            ("", "Flatten"),
            ("ai.onnx.ml", "ArrayFeatureExtractor"),
            ("", "Reshape"),
            ("", "Transpose"),
            ("", "ReduceMean"),
            ("", "Cast"),
        }
    ),
    "svm": frozenset(
        {("ai.onnx.ml", "SVMRegressor"), ("", "Concat"), ("", "Reshape"), ("", "Cast")}
    ),
    "svm-linear": _LINEAR_OPS,
    "mlp": _LINEAR_OPS | {("", "Relu"), ("", "Tanh"), ("", "Sigmoid")},
    "linear": _LINEAR_OPS,
    "mf": _LINEAR_OPS,
    "elo": _CONST_OPS,
    "fixed": _CONST_OPS,
}


@dataclass(frozen=True, eq=False)
class TrainedRouter:
    """A fitted router.

    ``estimator`` holds the scikit-learn model (knn, svm, mlp, linear); ``weights`` ``[d, m]``
    and ``bias`` ``[m]`` hold the linear map of ``mf`` (and ``bias`` alone the constant scores
    of ``elo``/``fixed``); ``extras`` keeps by-products such as the MF factors or Elo ratings.
    ``params`` are the resolved hyper-parameters (JSON-serialisable).
    """

    kind: str
    n_features: int
    n_models: int
    params: dict[str, Any]
    estimator: Any = None
    weights: F64 | None = None
    bias: F64 | None = None
    extras: dict[str, F64] = field(default_factory=dict)
    fit_seconds: float = 0.0

    def predict(self, X: npt.ArrayLike) -> FloatArray:
        """Predicted quality float32 ``[n, m]`` for features ``X [n, d]``."""
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected features [n, {self.n_features}], got {x.shape}")
        if self.estimator is not None:
            out = np.asarray(self.estimator.predict(x), dtype=np.float64)
        elif self.weights is not None and self.bias is not None:
            out = x.astype(np.float64) @ self.weights + self.bias
        elif self.bias is not None:
            out = np.broadcast_to(self.bias, (len(x), self.n_models))
        else:
            raise ValueError(f"router {self.kind!r} has nothing to predict with")
        return np.ascontiguousarray(out.reshape(len(x), self.n_models), dtype=np.float32)


# --------------------------------------------------------------------------- training


def _fit_knn(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    del seed
    p: dict[str, Any] = {"n_neighbors": 50, "weights": "distance"} | params
    if p["weights"] not in ("uniform", "distance"):
        raise ValueError(f"knn weights must be 'uniform' or 'distance', got {p['weights']!r}")
    k = min(int(p["n_neighbors"]), len(X))
    est = KNeighborsRegressor(n_neighbors=k, weights=p["weights"], algorithm="brute")
    return {"estimator": est.fit(X, Y), "params": p | {"n_neighbors": k}}


def _fit_svm(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    p: dict[str, Any] = {"kernel": "rbf", "C": 0.3, "epsilon": 0.1, "gamma": "scale"} | params
    if p["kernel"] == "linear":
        base = LinearSVR(C=p["C"], epsilon=0.0, random_state=seed, max_iter=10_000)
        est = MultiOutputRegressor(base).fit(X, Y)
        coef = np.stack([e.coef_ for e in est.estimators_], axis=1)
        intercept = np.array([float(np.ravel(e.intercept_)[0]) for e in est.estimators_])
        return {"estimator": est, "weights": coef, "bias": intercept, "params": p}
    base = SVR(kernel=p["kernel"], C=p["C"], epsilon=p["epsilon"], gamma=p["gamma"])
    return {"estimator": MultiOutputRegressor(base).fit(X, Y), "params": p}


def _fit_mlp(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    p: dict[str, Any] = {
        "hidden_layer_sizes": [128, 64],
        "activation": "relu",
        "alpha": 1e-2,
        "max_iter": 200,
        "early_stopping": True,
    } | params
    est = MLPRegressor(
        hidden_layer_sizes=tuple(p["hidden_layer_sizes"]),
        activation=p["activation"],
        alpha=p["alpha"],
        max_iter=p["max_iter"],
        early_stopping=p["early_stopping"],
        random_state=seed,
    ).fit(X, Y)
    return {"estimator": est, "params": p}


def _fit_linear(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    del seed
    p = {"alpha": 10.0} | params
    est = Ridge(alpha=p["alpha"]).fit(X.astype(np.float64), Y)
    return {"estimator": est, "params": p}


def _als_w_step(x: F64, r: F64, v: F64, alpha: float) -> F64:
    """argmin_W ||X W Vᵀ − R||² + α||W||², via eigendecompositions of XᵀX and VᵀV."""
    s, p = np.linalg.eigh(x.T @ x)
    t, q = np.linalg.eigh(v.T @ v)
    core = p.T @ (x.T @ r @ v) @ q
    return np.asarray(p @ (core / (np.outer(s, t) + alpha)) @ q.T, dtype=np.float64)


def _als_vb_step(z: F64, y: F64, alpha: float) -> tuple[F64, F64]:
    """Ridge of Y on [Z, 1] (bias unpenalised): returns V [m, k] and b [m]."""
    z1 = np.hstack([z, np.ones((len(z), 1))])
    reg = np.diag(np.r_[np.full(z.shape[1], alpha), 0.0])
    sol = np.linalg.solve(z1.T @ z1 + reg, z1.T @ y)
    return sol[:-1].T.copy(), sol[-1].copy()


def _fit_mf(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    p: dict[str, Any] = {"rank": 8, "alpha": 10.0, "iterations": 20} | params
    x = X.astype(np.float64)
    k = max(1, min(int(p["rank"]), Y.shape[1], x.shape[1]))
    alpha = float(p["alpha"])
    b = Y.mean(axis=0)
    ridge = _als_w_step(x, Y - b, np.eye(Y.shape[1]), alpha)  # full-rank ridge [d, m]
    u, sv, vt = np.linalg.svd(ridge, full_matrices=False)
    rng = np.random.default_rng(seed)
    w = u[:, :k] * np.sqrt(sv[:k]) + rng.normal(0.0, 1e-6, (x.shape[1], k))
    v = vt[:k].T * np.sqrt(sv[:k])
    for it in range(int(p["iterations"])):
        v, b = _als_vb_step(x @ w, Y, alpha)
        w = _als_w_step(x, Y - b, v, alpha)
        if logger.isEnabledFor(logging.DEBUG):
            loss = float(((x @ w @ v.T + b - Y) ** 2).mean())
            logger.debug("mf iteration %d: mse %.5f", it, loss)
    v, b = _als_vb_step(x @ w, Y, alpha)
    extras = {"query_projection": w, "model_embeddings": v}
    return {"weights": w @ v.T, "bias": b, "extras": extras, "params": p | {"rank": k}}


def _fit_fixed(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    del X, seed
    return {"bias": Y.mean(axis=0), "params": dict(params)}


def _pairwise_wins(Y: F64) -> F64:
    """``wins[i, j]`` = number of rows where model i's quality is strictly above model j's."""
    return np.asarray((Y[:, :, None] > Y[:, None, :]).sum(axis=0), dtype=np.float64)


def bradley_terry(wins: F64, prior: float = 0.5, iterations: int = 500) -> F64:
    """Bradley–Terry log-strengths (mean zero) by Hunter's MM algorithm.

    ``prior`` pseudo-wins are added in both directions of every pair, which keeps every
    strength finite. Converges to tolerance 1e-10 or stops after ``iterations``.
    """
    m = wins.shape[0]
    w = wins + prior * (1.0 - np.eye(m))
    games = w + w.T
    strength = np.ones(m)
    for _ in range(iterations):
        denom = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        new = w.sum(axis=1) / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - strength)) < 1e-10:
            strength = new
            break
        strength = new
    theta = np.log(strength)
    return np.asarray(theta - theta.mean(), dtype=np.float64)


def _fit_elo(X: FloatArray, Y: F64, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    del X, seed
    p = {"prior": 0.5} | params
    theta = bradley_terry(_pairwise_wins(Y), prior=float(p["prior"]))
    m = len(theta)
    win = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    score = (win.sum(axis=1) - 0.5) / max(m - 1, 1)  # drop the self-match (σ(0) = 0.5)
    elo = 1000.0 + 400.0 / np.log(10.0) * theta
    return {"bias": score, "extras": {"bt_log_strength": theta, "elo": elo}, "params": p}


_TRAINERS: dict[str, Callable[[FloatArray, F64, int, dict[str, Any]], dict[str, Any]]] = {
    "knn": _fit_knn,
    "svm": _fit_svm,
    "mlp": _fit_mlp,
    "linear": _fit_linear,
    "mf": _fit_mf,
    "elo": _fit_elo,
    "fixed": _fit_fixed,
}


def train_router(
    kind: str, X: npt.ArrayLike, Y: npt.ArrayLike, *, seed: int = 0, **params: Any
) -> TrainedRouter:
    """Fit a router of ``kind`` on features ``X [n, d]`` and quality ``Y [n, m]`` (0..1).

    ``params`` override the kind's defaults (chosen on a 20 % hash split of LLMRouter's train
    set with 256-d TF-IDF/SVD features): knn ``n_neighbors=50, weights="distance"``; svm
    ``kernel="rbf", C=0.3, epsilon=0.1, gamma="scale"``; mlp ``hidden_layer_sizes=[128, 64],
    activation="relu", alpha=1e-2, max_iter=200, early_stopping=True``; linear ``alpha=10``;
    mf ``rank=8`` (capped at m), ``alpha=10``, ``iterations=20``; elo ``prior=0.5``.
    ``seed`` fixes any randomness. Returns a :class:`TrainedRouter` whose ``fit_seconds`` is
    the wall time.
    """
    if kind not in _TRAINERS:
        raise ValueError(f"unknown router kind {kind!r}; expected one of {KINDS}")
    x = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(Y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need X [n, d] and Y [n, m] with n > 0; got {x.shape} and {y.shape}")
    start = time.perf_counter()
    fitted = _TRAINERS[kind](x, y, seed, dict(params))
    seconds = time.perf_counter() - start
    logger.info("trained %s on %s -> %d models in %.2fs", kind, x.shape, y.shape[1], seconds)
    return TrainedRouter(
        kind=kind,
        n_features=x.shape[1],
        n_models=y.shape[1],
        fit_seconds=seconds,
        **fitted,
    )


def smooth_by_task(Y: npt.ArrayLike, task: Sequence[str], weight: float = 0.5) -> F64:
    """Training targets shrunk toward their task's mean quality:
    ``weight · Y + (1 − weight) · mean(Y[rows of the same task])``.

    Per-query correctness is noisy (one sample per model and query); shrinking it toward the
    task mean denoises the targets. Only training uses task labels; the router still sees the
    query alone. ``weight = 1`` returns ``Y`` unchanged.
    """
    y = np.asarray(Y, dtype=np.float64)
    if len(task) != len(y) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"need one task per row and weight in [0, 1]; got {len(task)}, {weight}")
    labels = np.asarray(task)
    prior = np.zeros_like(y)
    for name in np.unique(labels):
        rows = labels == name
        prior[rows] = y[rows].mean(axis=0)
    return np.asarray(weight * y + (1.0 - weight) * prior, dtype=np.float64)


# --------------------------------------------------------------------------- ONNX export


def _io(n_features: int, n_models: int) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])
    y = helper.make_tensor_value_info("quality", TensorProto.FLOAT, [None, n_models])
    return x, y


def _make_model(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    n_features: int,
    n_models: int,
    *,
    ms_domain: bool = False,
) -> onnx.ModelProto:
    x, y = _io(n_features, n_models)
    graph = helper.make_graph(nodes, "router", [x], [y], initializer=inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if ms_domain:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="routeiq-converters")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=not ms_domain)
    return model


def _f32(name: str, value: npt.ArrayLike) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _linear_graph(weights: F64, bias: F64, n_features: int) -> onnx.ModelProto:
    """``quality = features @ weights + bias``: one MatMul and one Add."""
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["quality"]),
    ]
    inits = [_f32("W", weights), _f32("b", bias)]
    return _make_model(nodes, inits, n_features, weights.shape[1])


def _constant_graph(scores: F64, n_features: int) -> onnx.ModelProto:
    """``quality[i] = scores`` for every row: Shape → Concat → Expand."""
    m = len(scores)
    nodes = [
        helper.make_node("Shape", ["features"], ["batch"], start=0, end=1),
        helper.make_node("Concat", ["batch", "width"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["row", "out_shape"], ["quality"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([m], dtype=np.int64), "width"),
        _f32("row", np.asarray(scores).reshape(1, m)),
    ]
    return _make_model(nodes, inits, n_features, m)


_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid"}


def _mlp_graph(est: Any, n_features: int) -> onnx.ModelProto:
    """MatMul/Add per layer, the hidden activation between layers, identity output."""
    if est.activation not in _ACTIVATIONS:
        raise ValueError(f"MLP activation {est.activation!r} is not exportable")
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    h = "features"
    last = len(est.coefs_) - 1
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        inits += [_f32(f"W{i}", w), _f32(f"b{i}", b)]
        nodes.append(helper.make_node("MatMul", [h, f"W{i}"], [f"xw{i}"]))
        out = "quality" if i == last else f"z{i}"
        nodes.append(helper.make_node("Add", [f"xw{i}", f"b{i}"], [out]))
        if i != last:
            nodes.append(helper.make_node(_ACTIVATIONS[est.activation], [out], [f"h{i}"]))
            h = f"h{i}"
    return _make_model(nodes, inits, n_features, int(est.coefs_[-1].shape[1]))


def _max_norm(x: npt.ArrayLike) -> float:
    rows = np.asarray(x, dtype=np.float64)
    return float(np.sqrt((rows**2).sum(axis=1)).max()) if rows.size else 0.0


def _knn_distance_graph(est: Any, n_features: int) -> onnx.ModelProto:
    """Distance-weighted kNN mean, with scikit-learn's rule for exact matches.

    ``d`` = CDist (euclidean) to the training rows, k smallest by TopK; weights are ``1 / d``,
    except that a row with a neighbour closer than :data:`KNN_EXACT_DISTANCE` (scaled by the
    largest training-row norm) uses only those neighbours, weight 1 each — scikit-learn does
    this for distance exactly 0, which float32 CDist does not reproduce. skl2onnx's own
    conversion of ``weights="distance"`` is not used: with skl2onnx 1.20 it disagrees with
    scikit-learn by up to 0.58 on real data.
    """
    if est.effective_metric_ != "euclidean":
        raise ValueError(f"distance-weighted kNN export needs euclidean, not {est.metric!r}")
    train_y = np.asarray(est._y, dtype=np.float32)
    train_y = train_y.reshape(len(train_y), -1)
    nodes = [
        helper.make_node(
            "CDist", ["features", "train_x"], ["dist"], domain="com.microsoft", metric="euclidean"
        ),
        helper.make_node("TopK", ["dist", "k"], ["top_d", "top_i"], largest=0, sorted=1),
        helper.make_node("Less", ["top_d", "exact"], ["is_exact_b"]),
        helper.make_node("Cast", ["is_exact_b"], ["is_exact"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["is_exact"], ["any_exact"], axes=[1], keepdims=1),
        helper.make_node("Max", ["top_d", "exact"], ["safe_d"]),
        helper.make_node("Reciprocal", ["safe_d"], ["inv_d"]),
        helper.make_node("Less", ["zero", "any_exact"], ["use_exact"]),
        helper.make_node("Where", ["use_exact", "is_exact", "inv_d"], ["w"]),
        helper.make_node("Gather", ["train_y", "top_i"], ["top_y"], axis=0),
        helper.make_node("Unsqueeze", ["w", "axis2"], ["w3"]),
        helper.make_node("Mul", ["top_y", "w3"], ["wy"]),
        helper.make_node("ReduceSum", ["wy", "axis1"], ["num"], keepdims=0),
        helper.make_node("ReduceSum", ["w", "axis1"], ["den"], keepdims=1),
        helper.make_node("Div", ["num", "den"], ["quality"]),
    ]
    inits = [
        _f32("train_x", est._fit_X),
        _f32("train_y", train_y),
        numpy_helper.from_array(np.array([est.n_neighbors], dtype=np.int64), "k"),
        _f32("exact", np.array(KNN_EXACT_DISTANCE * max(1.0, _max_norm(est._fit_X)))),
        _f32("zero", np.array(0.0)),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    ]
    return _make_model(nodes, inits, n_features, train_y.shape[1], ms_domain=True)


def _unit_or_zero_rows(x: npt.ArrayLike, tol: float = KNN_UNIT_NORM_TOL) -> bool:
    """Every row has l2 norm 1 (within ``tol``) or is all zeros."""
    rows = np.asarray(x, dtype=np.float64)
    norms = np.sqrt((rows**2).sum(axis=1))
    return bool(rows.size) and bool(np.all((np.abs(norms - 1.0) <= tol) | (norms == 0.0)))


def _knn_dot_graph(est: Any, n_features: int) -> onnx.ModelProto:
    """Distance-weighted kNN mean from inner products, for unit-norm (or zero) training rows.

    ``key = 2·features·train_xᵀ − |t|²`` (one MatMul and a Sub); the k nearest rows are the k
    largest keys (TopK); their squared distances are ``|q|² − key = |q|² + |t|² − 2s``, the
    expansion scikit-learn's euclidean distances use. Weights ``1 / d``; exact matches
    (``d² < KNN_EXACT_DISTANCE²``) get :data:`KNN_EXACT_WEIGHT`, which makes the other
    neighbours' share (at most k·1e3 / 1e20) vanish in float32 — scikit-learn's rule (only
    exact matches count, equally), as in :func:`_knn_distance_graph`, with fewer nodes.
    With norms at most 1 the float32 cancellation error of ``d²`` is a few 1e-7, like
    onnxruntime's CDist (which expands the same way).
    """
    if est.effective_metric_ != "euclidean":
        raise ValueError(f"distance-weighted kNN export needs euclidean, not {est.metric!r}")
    train_x = np.asarray(est._fit_X, dtype=np.float64)
    train_y = np.asarray(est._y, dtype=np.float32)
    train_y = train_y.reshape(len(train_y), -1)
    nodes = [
        helper.make_node("MatMul", ["features", "train_xt2"], ["dot2"]),
        helper.make_node("Sub", ["dot2", "train_sq"], ["key"]),
        helper.make_node("TopK", ["key", "k"], ["top_key", "top_i"], largest=1, sorted=1),
        helper.make_node("ReduceSumSquare", ["features"], ["qq"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["qq", "top_key"], ["top_d2"]),
        helper.make_node("Less", ["top_d2", "exact2"], ["is_exact"]),
        helper.make_node("Max", ["top_d2", "exact2"], ["safe_d2"]),
        helper.make_node("Pow", ["safe_d2", "minus_half"], ["inv_d"]),
        helper.make_node("Where", ["is_exact", "exact_weight", "inv_d"], ["w"]),
        helper.make_node("Gather", ["train_y", "top_i"], ["top_y"], axis=0),
        helper.make_node("Einsum", ["w", "top_y"], ["num"], equation="nk,nkm->nm"),
        helper.make_node("ReduceSum", ["w", "axis1"], ["den"], keepdims=1),
        helper.make_node("Div", ["num", "den"], ["quality"]),
    ]
    inits = [
        _f32("train_xt2", 2.0 * train_x.T),
        _f32("train_sq", (train_x**2).sum(axis=1)),
        _f32("train_y", train_y),
        numpy_helper.from_array(np.array([est.n_neighbors], dtype=np.int64), "k"),
        _f32("exact2", np.array(KNN_EXACT_DISTANCE**2)),
        _f32("minus_half", np.array(-0.5)),
        _f32("exact_weight", np.array(KNN_EXACT_WEIGHT)),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]
    return _make_model(nodes, inits, n_features, train_y.shape[1])


def _knn_graph(est: Any, n_features: int, knn_dot: bool | None) -> onnx.ModelProto:
    """The inner-product graph when allowed and the training rows permit it, else CDist."""
    if knn_dot is not False and _unit_or_zero_rows(est._fit_X):
        return _knn_dot_graph(est, n_features)
    if knn_dot:
        raise ValueError("knn_dot=True needs unit-norm (or all-zero) training rows")
    return _knn_distance_graph(est, n_features)


def _skl2onnx_graph(trained: TrainedRouter, n_features: int) -> onnx.ModelProto:
    est = trained.estimator
    options = {id(est): {"optim": "cdist"}} if trained.kind == "knn" else None
    model: onnx.ModelProto = convert_sklearn(
        est,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        final_types=[("quality", FloatTensorType([None, trained.n_models]))],
        options=options,
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    model.ir_version = IR_VERSION
    model.producer_name = "routeiq-converters"
    onnx.checker.check_model(model)
    return model


def to_onnx(
    trained: TrainedRouter, n_features: int, *, knn_dot: bool | None = None
) -> onnx.ModelProto:
    """Export ``trained``: input ``features`` float32 ``[None, n_features]``, output
    ``quality`` float32 ``[None, m]`` (see the module docstring for the graph of each kind).

    ``knn_dot`` (distance-weighted knn only): ``None`` uses the inner-product graph
    (:func:`_knn_dot_graph`) when every training row is unit-norm or zero, else the CDist
    graph; ``True`` insists on the former, ``False`` forces the latter."""
    if n_features != trained.n_features:
        raise ValueError(f"router was trained on {trained.n_features} features, not {n_features}")
    if trained.weights is not None and trained.bias is not None:
        return _linear_graph(trained.weights, trained.bias, n_features)
    if trained.kind in ("elo", "fixed") and trained.bias is not None:
        return _constant_graph(trained.bias, n_features)
    if trained.kind == "linear":
        est = trained.estimator
        coef = np.atleast_2d(est.coef_).T
        return _linear_graph(coef, np.atleast_1d(est.intercept_), n_features)
    if trained.kind == "mlp":
        return _mlp_graph(trained.estimator, n_features)
    if trained.kind == "knn" and trained.estimator.weights == "distance":
        return _knn_graph(trained.estimator, n_features, knn_dot)
    return _skl2onnx_graph(trained, n_features)


def router_op_types(kind: str, variant: str = "") -> frozenset[tuple[str, str]]:
    """The ``(domain, op_type)`` pairs the graph of ``kind`` may contain (an allow-list).

    ``variant``: ``"linear"`` for ``svm`` with ``kernel="linear"``, ``"uniform"`` for ``knn``
    with ``weights="uniform"`` (skl2onnx's graph), ``"cdist"`` for the distance-weighted
    ``knn`` CDist graph (training rows not unit-norm); empty for the defaults.
    """
    key = f"{kind}-{variant}" if variant else kind
    if key not in _OP_TYPES:
        raise ValueError(f"unknown router kind/variant {key!r}")
    return _OP_TYPES[key]


def parity_check(
    trained: TrainedRouter, onnx_model: onnx.ModelProto, X_holdout: npt.ArrayLike
) -> dict[str, float]:
    """Compare scikit-learn/numpy and onnxruntime predictions on held-out features.

    Returns ``max_abs_diff`` (over all scores), ``decision_agreement`` (share of rows whose
    argmax model is the same; exact ties resolve to the lowest index on both sides),
    ``tie_aware_agreement`` (share of rows where the ONNX argmax model is within
    :data:`DECISION_TIE_TOL` of the reference's best score — the same decision up to ties that
    float32 rounding breaks either way) and ``n``.
    """
    x = np.ascontiguousarray(X_holdout, dtype=np.float32)
    ref = trained.predict(x)
    (got,) = ort_session(onnx_model).run(["quality"], {"features": x})
    got = np.asarray(got, dtype=np.float32)
    if got.shape != ref.shape:
        raise ValueError(f"ONNX output shape {got.shape} != reference {ref.shape}")
    if not len(x):
        return {
            "max_abs_diff": 0.0,
            "decision_agreement": 1.0,
            "tie_aware_agreement": 1.0,
            "n": 0.0,
        }
    picked = ref[np.arange(len(x)), got.argmax(axis=1)]
    return {
        "max_abs_diff": float(np.abs(ref.astype(np.float64) - got).max()),
        "decision_agreement": float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1))),
        "tie_aware_agreement": float(np.mean(picked >= ref.max(axis=1) - DECISION_TIE_TOL)),
        "n": float(len(x)),
    }


# --------------------------------------------------------------------------- persistence

#: Every type :func:`load_skops` accepts in a file (``module.qualname``, as skops records it).
SKOPS_TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.NoneType",
    "builtins.bool",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.str",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._mt19937.MT19937",
    "numpy.random.mtrand.RandomState",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.multioutput.MultiOutputRegressor",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.svm._classes.LinearSVR",
    "sklearn.svm._classes.SVR",
)


def _state(trained: TrainedRouter) -> dict[str, Any]:
    return {
        "format": "routeiq-router/1",
        "kind": trained.kind,
        "n_features": trained.n_features,
        "n_models": trained.n_models,
        "params_json": json.dumps(trained.params, sort_keys=True),
        "estimator": trained.estimator,
        "weights": trained.weights,
        "bias": trained.bias,
        "extras": dict(trained.extras),
        "fit_seconds": trained.fit_seconds,
    }


def save_skops(trained: TrainedRouter, path: str | Path) -> Path:
    """Write ``trained`` with skops (no pickle); read it back with :func:`load_skops`."""
    import skops.io as sio

    dst = Path(path)
    sio.dump(_state(trained), dst)
    return dst


def _skops_types(src: Path) -> set[str]:
    """All ``module.class`` names recorded in a skops file's ``schema.json`` (read as JSON)."""
    with zipfile.ZipFile(src) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_skops(path: str | Path) -> TrainedRouter:
    """Load a router written by :func:`save_skops`.

    Every type recorded in the file must be in :data:`SKOPS_TRUSTED_TYPES` — including the
    scikit-learn types skops would trust on its own — else :class:`ValueError` names them.
    """
    import skops.io as sio

    src = Path(path)
    found = _skops_types(src)
    untrusted = sorted(found - set(SKOPS_TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"{src}: refusing untrusted types {untrusted}")
    state = sio.load(src, trusted=sorted(found))
    if not isinstance(state, dict) or state.get("format") != "routeiq-router/1":
        raise ValueError(f"{src}: not a routeiq router file")
    return TrainedRouter(
        kind=str(state["kind"]),
        n_features=int(state["n_features"]),
        n_models=int(state["n_models"]),
        params=json.loads(state["params_json"]),
        estimator=state["estimator"],
        weights=state["weights"],
        bias=state["bias"],
        extras=dict(state["extras"]),
        fit_seconds=float(state["fit_seconds"]),
    )


class PickleRefusedError(PermissionError):
    """Raised by :func:`load_pickle` when loading pickles was not explicitly allowed."""


def load_pickle(path: str | Path, allow: bool = False) -> object:
    """Load a third-party pickle (e.g. an LLMRouter ``.pkl`` model) — only when allowed.

    Unpickling runs arbitrary code from the file, so this refuses with
    :class:`PickleRefusedError` unless ``allow`` is true or the environment variable
    ``LLMROUTER_ALLOW_PICKLE_MODELS`` is ``true``. Prefer :func:`save_skops`/:func:`load_skops`.
    """
    src = Path(path)
    env = os.environ.get(PICKLE_ENV, "").strip().lower() == "true"
    if not (allow or env):
        raise PickleRefusedError(
            f"refusing to unpickle {src}: pickle runs arbitrary code from the file. "
            f"Convert the model to skops, or, if you trust its origin, opt in with "
            f"--allow-pickle (routeiq-bundle convert) or {PICKLE_ENV}=true."
        )
    logger.warning("unpickling %s (explicitly allowed; pickle can run arbitrary code)", src)
    import pickle  # noqa: TID251 (explicit opt-in only)

    with src.open("rb") as fh:
        return pickle.load(fh)  # noqa: S301 (explicit opt-in above)
