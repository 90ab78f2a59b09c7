"""Routers as ONNX graphs: skl2onnx where it converts correctly, our own graphs where it does
not or where a leaner graph serves faster (KNN over unit-norm features, MLP, linear maps)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

from converters.onnx_common import IR_VERSION, ML_OPSET, OPSET
from converters.routers.fit import TrainedRouter

F64 = npt.NDArray[np.float64]

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
_LINEAR_OPS = frozenset({("", "MatMul"), ("", "Add")})
_CONST_OPS = frozenset({("", "Shape"), ("", "Concat"), ("", "Expand")})
CALIBRATION_OPS = frozenset({("", "Mul"), ("", "Add"), ("", "Sigmoid")})
"""What Platt calibration appends to any router's graph."""
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
    "logistic": _LINEAR_OPS | {("", "Sigmoid")},
    "mf": _LINEAR_OPS,
    "elo": _CONST_OPS,
    "fixed": _CONST_OPS,
}


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


def _linear_graph(
    weights: F64, bias: F64, n_features: int, *, sigmoid: bool = False
) -> onnx.ModelProto:
    """``quality = features @ weights + bias``: one MatMul and one Add (then a Sigmoid for a
    logistic router)."""
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits" if sigmoid else "quality"]),
    ]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["quality"]))
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


def _calibrated(model: onnx.ModelProto, calibration: F64) -> onnx.ModelProto:
    """``model`` with Platt scaling appended: ``quality = σ(a · raw + b)`` per model column."""
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["raw_quality" if o == "quality" else o for o in node.output]
        node.input[:] = ["raw_quality" if i == "quality" else i for i in node.input]
    graph.initializer.extend([_f32("platt_a", calibration[0]), _f32("platt_b", calibration[1])])
    graph.node.extend(
        [
            helper.make_node("Mul", ["raw_quality", "platt_a"], ["platt_scaled"]),
            helper.make_node("Add", ["platt_scaled", "platt_b"], ["platt_logits"]),
            helper.make_node("Sigmoid", ["platt_logits"], ["quality"]),
        ]
    )
    ms = any(o.domain == "com.microsoft" for o in model.opset_import)
    onnx.checker.check_model(model, full_check=not ms)
    return model


def to_onnx(
    trained: TrainedRouter, n_features: int, *, knn_dot: bool | None = None
) -> onnx.ModelProto:
    """Export ``trained``: input ``features`` float32 ``[None, n_features]``, output
    ``quality`` float32 ``[None, m]`` (see the module docstring for the graph of each kind),
    with its Platt calibration appended when it has one.

    ``knn_dot`` (distance-weighted knn only): ``None`` uses the inner-product graph
    (:func:`_knn_dot_graph`) when every training row is unit-norm or zero, else the CDist
    graph; ``True`` insists on the former, ``False`` forces the latter."""
    if n_features != trained.n_features:
        raise ValueError(f"router was trained on {trained.n_features} features, not {n_features}")
    model = _base_graph(trained, n_features, knn_dot)
    return model if trained.calibration is None else _calibrated(model, trained.calibration)


def _base_graph(trained: TrainedRouter, n_features: int, knn_dot: bool | None) -> onnx.ModelProto:
    if trained.weights is not None and trained.bias is not None:
        return _linear_graph(
            trained.weights, trained.bias, n_features, sigmoid=trained.link == "sigmoid"
        )
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
