"""Saving and loading fitted routers: skops with an allow-list of types; pickles only on an
explicit opt-in."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from converters.routers.fit import TrainedRouter

logger = logging.getLogger(__name__)


PICKLE_ENV = "LLMROUTER_ALLOW_PICKLE_MODELS"


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
        "link": trained.link,
        "calibration": trained.calibration,
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
        link=str(state.get("link", "identity")),
        calibration=state.get("calibration"),
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
