"""Evaluating and calibrating a bundle exactly as the service serves it: the bundle is loaded
with the service's own verifier and loader, and its ONNX featurizer and router score the rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.bundle import new_version, write_bundle
from converters.datasets import RoutingDataset, load
from converters.evaluation.report import Target, calibrate_lambda, evaluate_predictions
from converters.features.build import BuiltFeaturizer, build_featurizer, encode_all
from converters.routers.tier import price_ladder
from converters.train import model_costs
from router_service.bundles.loader import load_bundle
from router_service.bundles.manifest import Manifest
from router_service.bundles.verify import verify_bundle
from router_service.strategies.learned import OnnxPredictor
from router_service.strategies.tier import ladder_quality

__all__ = ["bundle_scores", "calibrate_bundle", "evaluate_bundle"]

F64 = npt.NDArray[np.float64]
Bar = Callable[[str, int], Callable[[int], None]]
MAX_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class _View:
    """The dataset models a bundle is judged between, their predicted quality ``S``, their
    cost, and what λ weighs (their price positions for a tier router, else the cost)."""

    models: list[str]
    columns: list[int]
    S: F64
    cost: F64
    policy_cost: F64 | None


def _view(manifest: Manifest, outputs: F64, ds: RoutingDataset) -> _View:
    """A per-model bundle is judged between its own models (the dataset must have them); a
    tier bundle between the dataset's own price-ladder representatives (any models: what a
    user would deploy), at their positions."""
    if manifest.ladder is None:
        missing = [m for m in manifest.models if m not in ds.models]
        if missing:
            raise ValueError(f"the dataset has no quality for the bundle's models: {missing}")
        cols = [ds.models.index(m) for m in manifest.models]
        cost = np.array([manifest.model_costs[m] for m in manifest.models], dtype=np.float64)
        return _View(list(manifest.models), cols, outputs, cost, None)
    costs, _ = model_costs(ds)
    cost_all = np.array([costs[m] for m in ds.models], dtype=np.float64)
    ladder = price_ladder(cost_all, ds.train().quality)
    cols = list(ladder.representatives)
    S = ladder_quality(outputs, manifest.ladder, ladder.positions)
    positions = np.array(ladder.positions)
    return _View([ds.models[j] for j in cols], cols, S, cost_all[cols], positions)


def bundle_scores(bundle: Path, rows: RoutingDataset, bar: Bar) -> tuple[F64, Manifest]:
    """The router's outputs for the rows' queries: quality ``[n, m]`` per bundle model, or
    ``[n, rungs]`` per rung of a tier bundle's ladder."""
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
    assert isinstance(router.strategy, OnnxPredictor)
    return router.strategy.predict_batch(X), manifest


def _split(ds: RoutingDataset, split: str) -> RoutingDataset:
    return {"train": ds.train, "test": ds.test}[split]() if split != "all" else ds


def evaluate_bundle(
    bundle: Path, data: Path, fmt: str, *, cost_weight: float | None, bar: Bar, split: str = "test"
) -> tuple[dict[str, Any], Manifest]:
    ds = load(data, fmt)
    rows = _split(ds, split)
    outputs, manifest = bundle_scores(bundle, rows, bar)
    v = _view(manifest, outputs, ds)
    lam = manifest.default_cost_weight if cost_weight is None else cost_weight
    report = evaluate_predictions(
        v.S,
        rows.quality[:, v.columns].astype(np.float64),
        ds.train().quality[:, v.columns].astype(np.float64),
        v.cost,
        lam=lam,
        models=v.models,
        policy_cost=v.policy_cost,
    )
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
    outputs, manifest = bundle_scores(bundle, rows, bar)
    v = _view(manifest, outputs, ds)
    lam, table = calibrate_lambda(
        v.S,
        rows.quality[:, v.columns].astype(np.float64),
        ds.train().quality[:, v.columns].astype(np.float64),
        v.cost,
        Target(target),
        policy_cost=v.policy_cost,
        models=v.models,
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
        ladder=manifest.ladder,
        price_prior=manifest.price_prior,
    )
    return lam, new
