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
* ``logistic`` — one L2 :class:`~sklearn.linear_model.LogisticRegression` per model (a 0..1
  quality counts as a label weighted by it), exported as ``MatMul``+``Add``+``Sigmoid``:
  predicted quality is the probability that the model answers right.
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

Not fits of their own (:data:`ROUTER_CHOICES`): ``auto``, the kind among
``converters.train.AUTO_KINDS`` that gains most above the single models on the validation
slice; ``tier``, any kind above trained on the quality per rung of the data's price ladder
(:mod:`converters.routers.tier`), so it serves between any priced models.

ONNX contract (:func:`to_onnx`): input ``features`` float32 ``[None, d]``, output ``quality``
float32 ``[None, m]``; target opset :data:`OPSET`, IR version :data:`IR_VERSION`.
:func:`router_op_types` lists the ``(domain, op_type)`` pairs each kind can emit.

Persistence: :func:`save_skops` / :func:`load_skops` (skops, with an explicit allow-list of
types, :data:`SKOPS_TRUSTED_TYPES`); :func:`load_pickle` exists only for third-party pickles
and refuses unless explicitly allowed.
"""

from converters.onnx_common import onnx_op_types
from converters.routers.fit import (
    KINDS,
    MASKED_KINDS,
    TrainedRouter,
    bradley_terry,
    smooth_by_task,
    train_masked,
    train_router,
)
from converters.routers.graphs import router_op_types, to_onnx
from converters.routers.parity import parity_check
from converters.routers.persist import (
    PICKLE_ENV,
    SKOPS_TRUSTED_TYPES,
    PickleRefusedError,
    load_pickle,
    load_skops,
    save_skops,
)

ROUTER_CHOICES = (*KINDS, "auto", "tier")
"""What ``routeiq-bundle train --router`` accepts."""

__all__ = [
    "KINDS",
    "MASKED_KINDS",
    "PICKLE_ENV",
    "ROUTER_CHOICES",
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
    "train_masked",
    "train_router",
]
