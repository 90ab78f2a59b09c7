"""Evaluating and calibrating a bundle exactly as the service serves it: the bundle is loaded
with the service's own verifier and loader, and its ONNX featurizer and router score the rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.bundle import new_version, write_bundle
from converters.datasets import RoutingDataset, load
from converters.evaluation.report import Target, calibrate_lambda, evaluate_predictions
from converters.features.build import BuiltFeaturizer, build_featurizer, encode_all
from router_service.bundles.loader import load_bundle
from router_service.bundles.manifest import Manifest
from router_service.bundles.verify import verify_bundle
from router_service.strategies.learned import OnnxQualityRouter

__all__ = ["bundle_scores", "calibrate_bundle", "evaluate_bundle"]

F64 = npt.NDArray[np.float64]
Bar = Callable[[str, int], Callable[[int], None]]
MAX_FILE_BYTES = 1 << 30


def _columns(manifest: Manifest, ds: RoutingDataset) -> list[int]:
    missing = [m for m in manifest.models if m not in ds.models]
    if missing:
        raise ValueError(f"the dataset has no quality for the bundle's models: {missing}")
    return [ds.models.index(m) for m in manifest.models]


def bundle_scores(bundle: Path, rows: RoutingDataset, bar: Bar) -> tuple[F64, Manifest]:
    """Predicted quality ``[n, m]`` (bundle model order) for the rows' queries."""
    router = load_bundle(bundle, MAX_FILE_BYTES)
    manifest = verify_bundle(bundle, MAX_FILE_BYTES).manifest
    spec = manifest.featurizer
    if spec.kind == "embedding":  # clients send MiniLM vectors: compute them the same way
        built = build_featurizer("embedding", [], rows.queries[:8])
    else:
        assert router.featurizer is not None
        built = BuiltFeaturizer(
            spec, {}, router.featurizer.featurize, batch=1 if spec.quantized else 64
        )
    X = encode_all(built, rows.queries, bar("featurize", rows.n_queries))
    assert isinstance(router.strategy, OnnxQualityRouter)
    return router.strategy.predict_batch(X), manifest


def _split(ds: RoutingDataset, split: str) -> RoutingDataset:
    return {"train": ds.train, "test": ds.test}[split]() if split != "all" else ds


def evaluate_bundle(
    bundle: Path, data: Path, fmt: str, *, cost_weight: float | None, bar: Bar, split: str = "test"
) -> tuple[dict[str, Any], Manifest]:
    ds = load(data, fmt)
    rows = _split(ds, split)
    S, manifest = bundle_scores(bundle, rows, bar)
    cols = _columns(manifest, ds)
    cost = np.array([manifest.model_costs[m] for m in manifest.models], dtype=np.float64)
    lam = manifest.default_cost_weight if cost_weight is None else cost_weight
    Y = rows.quality[:, cols].astype(np.float64)
    Y_train = ds.train().quality[:, cols].astype(np.float64)
    report = evaluate_predictions(S, Y, Y_train, cost, lam=lam, models=manifest.models)
    report["bundle"] = {
        "name": manifest.name,
        "version": manifest.version,
        "router_kind": manifest.router_kind,
        "featurizer": manifest.featurizer.kind,
        "cost_unit": manifest.cost_unit,
    }
    return report, manifest


def calibrate_bundle(
    bundle: Path, data: Path, fmt: str, *, target: str, bar: Bar, split: str = "test"
) -> tuple[float, Manifest]:
    """Set the bundle's default λ to meet ``target`` on the given rows (use rows the router
    was not trained on); rewrites the bundle in place under a new version."""
    ds = load(data, fmt)
    rows = _split(ds, split)
    S, manifest = bundle_scores(bundle, rows, bar)
    cols = _columns(manifest, ds)
    cost = np.array([manifest.model_costs[m] for m in manifest.models], dtype=np.float64)
    lam, table = calibrate_lambda(
        S,
        rows.quality[:, cols].astype(np.float64),
        ds.train().quality[:, cols].astype(np.float64),
        cost,
        Target(target),
    )
    files = {name: (bundle / name).read_bytes() for name in manifest.files}
    provenance = dict(manifest.provenance) | {
        "calibrated": {
            "target": target,
            "data_file": data.name,
            "split": split,
            "rows": rows.n_queries,
            "previous_version": manifest.version,
        }
    }
    new = write_bundle(
        bundle,
        name=manifest.name,
        router_kind=manifest.router_kind,
        models=list(manifest.models),
        model_costs=manifest.model_costs,
        cost_unit=manifest.cost_unit,
        featurizer=manifest.featurizer,
        files=files,
        version=new_version(after=manifest.version),
        default_cost_weight=lam,
        calibration=table,
        provenance=provenance,
    )
    return lam, new
