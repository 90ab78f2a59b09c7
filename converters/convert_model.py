"""``routeiq-bundle convert`` and ``export-encoder``: fitted models → ONNX, with parity checks.

A router estimator is read from a skops file (a router written by this project, or a bare
scikit-learn regressor predicting one quality column per model). A pickle or joblib file is
read only with ``--allow-pickle`` or ``LLMROUTER_ALLOW_PICKLE_MODELS=true``: unpickling runs
code from the file. The service never reads either: it serves only the ONNX bundle.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.bundle import write_bundle
from converters.datasets import load
from converters.features import minilm
from converters.routers import TrainedRouter, load_pickle, load_skops, parity_check, to_onnx
from router_service.bundles.loader import load_bundle
from router_service.bundles.manifest import Manifest
from router_service.bundles.verify import verify_bundle

__all__ = ["convert_estimator", "export_encoder", "wrap_estimator"]

Bar = Callable[[str, int], Callable[[int], None]]
_KIND_BY_CLASS = {
    "KNeighborsRegressor": "knn",
    "MLPRegressor": "mlp",
    "Ridge": "linear",
    "LinearRegression": "linear",
    "MultiOutputRegressor": "svm",
}


def wrap_estimator(obj: Any, n_models: int) -> TrainedRouter:
    """A :class:`TrainedRouter` around a fitted scikit-learn regressor ``[n, d] → [n, m]``."""
    if isinstance(obj, TrainedRouter):
        return obj
    kind = _KIND_BY_CLASS.get(type(obj).__name__)
    if kind is None:
        raise ValueError(
            f"cannot convert a {type(obj).__name__}; supported: {', '.join(sorted(_KIND_BY_CLASS))}"
        )
    n_features = int(getattr(obj, "n_features_in_", 0))
    if n_features <= 0:
        raise ValueError(f"{type(obj).__name__} is not fitted")
    return TrainedRouter(
        kind=kind, n_features=n_features, n_models=n_models, params={}, estimator=obj
    )


def _read(path: Path, allow_pickle: bool) -> Any:
    if path.suffix == ".skops":
        try:
            return load_skops(path)
        except ValueError as exc:
            if "not a routeiq router file" not in str(exc):
                raise
        raise ValueError(
            f"{path}: not a router written by routeiq-bundle; wrap the estimator "
            "with converters.convert_model.wrap_estimator and save it with "
            "converters.routers.save_skops"
        )
    return load_pickle(path, allow=allow_pickle)


def _holdout(
    like: Path, data: Path | None, fmt: str, n_features: int, bar: Bar
) -> npt.NDArray[np.float32]:
    if data is None:  # no data: standard-normal rows exercise the graph, not the data range
        rng = np.random.default_rng(0)
        return rng.standard_normal((256, n_features)).astype(np.float32)
    router = load_bundle(like, 1 << 30)
    rows = load(data, fmt).test()
    assert router.featurizer is not None
    texts = list(rows.queries[:512])
    advance = bar("featurize held-out rows", len(texts))
    out = [router.featurizer.featurize([t]) for t in texts]
    advance(len(texts))
    return np.concatenate(out).astype(np.float32)


def convert_estimator(
    model: Path,
    out: Path,
    *,
    like: Path,
    allow_pickle: bool,
    name: str | None,
    data: Path | None,
    fmt: str,
    bar: Bar,
) -> tuple[Manifest, dict[str, float]]:
    """Convert the estimator in ``model`` into a bundle sharing ``like``'s featurizer."""
    base = verify_bundle(like, 1 << 30)
    m = base.manifest
    trained = wrap_estimator(_read(model, allow_pickle), len(m.models))
    if trained.n_features != m.featurizer.dim or trained.n_models != len(m.models):
        raise ValueError(
            f"estimator maps {trained.n_features} features to {trained.n_models} "
            f"models; the bundle's featurizer gives {m.featurizer.dim} features "
            f"for {len(m.models)} models"
        )
    onnx_model = to_onnx(trained, trained.n_features)
    X = _holdout(like, data, fmt, trained.n_features, bar)
    parity = parity_check(trained, onnx_model, X)
    files = {f: base.blobs[f] for f in m.files if f != m.router.file}
    manifest = write_bundle(
        out,
        name=name or f"{m.name}-converted",
        router_kind=trained.kind,
        models=list(m.models),
        model_costs=m.model_costs,
        cost_unit=m.cost_unit,
        featurizer=m.featurizer,
        files={**files, "router.onnx": onnx_model.SerializeToString()},
        default_cost_weight=m.default_cost_weight,
        price_prior=m.price_prior,
        provenance={
            "converted_from": model.name,
            "featurizer_from": f"{m.name}@{m.version}",
            "parity": parity,
            "parity_rows": "held-out test rows" if data else "256 standard-normal rows",
        },
    )
    return manifest, parity


def export_encoder(out: Path, int8: bool) -> tuple[list[Path], float]:
    """Write the MiniLM encoder (fp32, and int8 when asked) and its tokenizer into ``out``."""
    weights = minilm.find_weights_dir()
    out.mkdir(parents=True, exist_ok=True)
    fp32 = minilm.build_encoder_onnx(weights, out / "minilm.onnx")
    cosine = minilm.parity_check(
        weights,
        fp32,
        [
            "What is the capital of France?",
            "Write a haiku about autumn leaves.",
            "Solve 12 * (3 + 4) and explain each step.",
            "short",
        ],
    )
    paths = [fp32]
    if int8:
        paths.append(minilm.quantize_int8(fp32, out / "minilm-int8.onnx"))
    tok = out / "tokenizer.json"
    shutil.copyfile(minilm.tokenizer_path(weights), tok)
    return [*paths, tok], cosine
