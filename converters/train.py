"""``routeiq-bundle train``: dataset → featurizer → router → ONNX (with parity) → bundle.

The default λ is calibrated on a validation slice of the training rows (never the test rows);
the router is then refitted on all training rows, exported, checked for parity against
scikit-learn on the test rows, evaluated on the test rows, and written as a bundle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.bundle import write_bundle
from converters.datasets import RoutingDataset, hash_split, load
from converters.evaluation.report import Target, calibrate_lambda, evaluate_predictions
from converters.features.build import BuiltFeaturizer, build_featurizer, encode_all
from converters.routers import parity_check, smooth_by_task, to_onnx, train_router
from router_service.bundles.manifest import Manifest
from router_service.onnx_session import make_session

__all__ = ["TrainOptions", "TrainResult", "model_costs", "train_bundle"]

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
Step = Callable[[str], None]
Bar = Callable[[str, int], Callable[[int], None]]


@dataclass
class TrainOptions:
    data: Path
    fmt: str
    router: str
    featurizer: str
    out: Path
    name: str | None = None
    seed: int = 0
    svd_dims: int | None = 256
    params: dict[str, Any] = field(default_factory=dict)
    target: str = "best-single"
    validation_fraction: float = 0.15
    task_smoothing: float = 0.5
    """Training targets shrunk toward their task's mean (1 = off); used when rows have tasks."""


@dataclass
class TrainResult:
    manifest: Manifest
    report: dict[str, Any]
    seconds: float


def model_costs(ds: RoutingDataset) -> tuple[dict[str, float], str]:
    """Per-model cost the bundle serves with: list prices (USD per 1M tokens, mean of input
    and output) when every model has one, else the mean measured cost per query (USD)."""
    prices = ds.price_vector()
    if prices is not None:
        return {m: float(p) for m, p in zip(ds.models, prices, strict=True)}, "usd_per_mtok"
    if ds.cost is not None:
        mean = ds.train().cost.mean(axis=0)  # type: ignore[union-attr]
        return {m: float(c) for m, c in zip(ds.models, mean, strict=True)}, "usd_per_query"
    raise ValueError(f"{ds.name}: no prices and no per-query costs; cannot weigh cost")


def _features(
    built: BuiltFeaturizer, ds: RoutingDataset, bar: Bar, what: str
) -> npt.NDArray[np.float32]:
    return encode_all(built, ds.queries, bar(f"featurize {what}", ds.n_queries))


def _predict(onnx_bytes: bytes, X: npt.NDArray[np.float32]) -> F64:
    (out,) = make_session(onnx_bytes).run(["quality"], {"features": X})
    return np.asarray(out, dtype=np.float64)


def _calibrate(
    opts: TrainOptions,
    X: npt.NDArray[np.float32],
    Y_fit: F64,
    Y: F64,
    *,
    cost: F64,
    step: Step,
) -> tuple[float, list[dict[str, float]]]:
    """λ from a router fitted on most training rows, judged on the rest (true quality)."""
    inner = hash_split([str(i) for i in range(len(X))], opts.validation_fraction) == "train"
    step(f"calibrate λ for {opts.target} on {int((~inner).sum())} validation rows")
    trained = train_router(opts.router, X[inner], Y_fit[inner], seed=opts.seed, **opts.params)
    S_val = _predict(to_onnx(trained, X.shape[1]).SerializeToString(), X[~inner])
    return calibrate_lambda(S_val, Y[~inner], Y[inner], cost, Target(opts.target))


def train_bundle(opts: TrainOptions, step: Step, bar: Bar) -> TrainResult:
    """Train and write one bundle; ``step`` reports stages, ``bar`` makes progress counters."""
    start = time.perf_counter()
    ds = load(opts.data, opts.fmt)
    train, test = ds.train(), ds.test()
    step(f"{ds.name}: {train.n_queries} train / {test.n_queries} test rows, {ds.n_models} models")
    for split, rows in (("train", train), ("test", test)):
        if rows.n_queries == 0:
            raise ValueError(
                f"{opts.data}: no {split} rows; training needs both splits (a 'split' column "
                "of train/test, or leave it empty for a hash split of 20 % test)"
            )
    costs, unit = model_costs(ds)
    cost = np.array([costs[m] for m in ds.models], dtype=np.float64)
    step(f"fit featurizer {opts.featurizer}")
    built = build_featurizer(
        opts.featurizer, train.queries, test.queries[:256], svd_dims=opts.svd_dims
    )
    X_train, X_test = _features(built, train, bar, "train"), _features(built, test, bar, "test")
    Y_train = train.quality.astype(np.float64)
    Y_fit = Y_train
    if train.task is not None and opts.task_smoothing < 1.0:
        step(f"task smoothing {opts.task_smoothing} over {len(set(train.task))} tasks")
        Y_fit = smooth_by_task(Y_train, train.task, opts.task_smoothing)
    lam, table = _calibrate(opts, X_train, Y_fit, Y_train, cost=cost, step=step)
    step(f"train {opts.router} on {X_train.shape}")
    trained = train_router(opts.router, X_train, Y_fit, seed=opts.seed, **opts.params)
    model = to_onnx(trained, X_train.shape[1])
    parity = parity_check(trained, model, X_test)
    step(
        f"parity sklearn vs ONNX: max |diff| {parity['max_abs_diff']:.2e}, same decision "
        f"{parity['decision_agreement']:.4f} ({parity['tie_aware_agreement']:.4f} counting ties)"
    )
    if parity["tie_aware_agreement"] < 1.0:
        raise ValueError(f"parity check failed: ONNX and scikit-learn decide differently: {parity}")
    router_blob = model.SerializeToString()
    report = evaluate_predictions(
        _predict(router_blob, X_test),
        test.quality.astype(np.float64),
        Y_train,
        cost,
        lam=lam,
        models=ds.models,
    )
    name = opts.name or f"{ds.name.split(':')[0]}-{opts.router}-{opts.featurizer}"
    provenance = {
        "dataset": ds.name,
        "format": opts.fmt,
        "data_file": opts.data.name,
        "split": "dataset split (train/test); λ calibrated on a hash slice of train",
        "train_rows": train.n_queries,
        "test_rows": test.n_queries,
        "router_params": trained.params,
        "fit_seconds": round(trained.fit_seconds, 3),
        "parity": parity,
        "featurizer_parity": built.parity,
        "target": opts.target,
        "metrics": {k: report[k] for k in ("router", "best_single", "oracle", "random")}
        | ({"apgr": report["apgr"]["apgr"]} if "apgr" in report else {}),
    }
    manifest = write_bundle(
        opts.out,
        name=name,
        router_kind=opts.router,
        models=list(ds.models),
        model_costs=costs,
        cost_unit=unit,
        featurizer=built.spec,
        files={**built.files, "router.onnx": router_blob},
        default_cost_weight=lam,
        calibration=table,
        provenance=provenance,
    )
    return TrainResult(manifest, report, time.perf_counter() - start)
