"""``routeiq-bundle train``: dataset → featurizer → router → ONNX (with parity) → bundle.

The default λ is calibrated on a validation slice of the training rows (never the test rows);
the router is then refitted on all training rows, exported, checked for parity against
scikit-learn on the test rows, evaluated on the test rows, and written as a bundle.

Router ``tier`` learns quality per rung of the dataset's price ladder
(:mod:`converters.routers.tier`) with a base kind (``params: {"base": "linear"}`` by default,
α = 100; ``margin`` and ``span`` tune the ladder); λ then weighs price positions, and it is
evaluated between the ladder's representative models. Per-model routers record a price prior
for candidates they were not trained on (:func:`price_prior`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from converters.bundle import write_bundle
from converters.datasets import RoutingDataset, hash_split, load
from converters.evaluation.policies import sweep
from converters.evaluation.report import Target, calibrate_lambda, evaluate_predictions
from converters.features.build import BuiltFeaturizer, build_featurizer, encode_all
from converters.routers import (
    KINDS,
    TrainedRouter,
    parity_check,
    smooth_by_task,
    to_onnx,
    train_router,
)
from converters.routers.fit import apply_platt, platt
from converters.routers.tier import PriceLadder, ladder_targets, price_ladder
from router_service.bundles.manifest import Manifest, PricePriorSpec
from router_service.onnx_session import make_session

__all__ = [
    "FittedRouter",
    "TrainOptions",
    "TrainResult",
    "featurize_training",
    "fit_router",
    "load_for_training",
    "model_costs",
    "predict_quality",
    "price_prior",
    "train_bundle",
]

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
TIER_TARGET = "quality-share:0.97"
"""A tier router's default λ target: the cheapest routing keeping 97 % of the best single
model's quality on the validation slice (``best-single`` would put every call on the top rung,
whose price *is* the best single model's)."""
AUTO_KINDS = ("knn", "linear", "logistic")
"""The kinds ``--router auto`` tries (docs/routers.md, "auto")."""
TIER_BASE_PARAMS: dict[str, dict[str, Any]] = {"linear": {"alpha": 100.0}}
"""A tier router's base defaults: a difficulty signal must carry to prompts unlike the
training data's, and a strongly regularised ridge does (docs/routers.md, "tier")."""
Step = Callable[[str], None]
Progress = Callable[[int], None]
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
    target: str | None = None
    """Default λ target (see :class:`~converters.evaluation.report.Target`); None:
    ``best-single``, or :data:`TIER_TARGET` for tier routers."""
    validation_fraction: float = 0.15
    task_smoothing: float = 0.5
    """Training targets shrunk toward their task's mean (1 = off); used when rows have tasks."""
    calibration: str = "none"
    """``platt``: per-model Platt scaling fitted on the validation slice, exported in the graph."""


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


@dataclass
class _Outputs:
    """What the router predicts: per model (``ladder`` None), or per rung of a price ladder."""

    base: str
    params: dict[str, Any]
    columns: list[int]
    """Dataset models the router is evaluated between (all, or the ladder's representatives)."""
    names: list[str]
    """Their names."""
    ladder: PriceLadder | None = None

    @classmethod
    def of(cls, opts: TrainOptions, ds: RoutingDataset, Y_train: F64, cost: F64) -> _Outputs:
        if opts.router == "auto" and opts.params:
            raise ValueError("--params cannot be combined with --router auto (each kind its own)")
        if opts.router != "tier":
            return cls(opts.router, dict(opts.params), list(range(ds.n_models)), list(ds.models))
        params = dict(opts.params)
        base = str(params.pop("base", "linear"))
        if base not in KINDS:
            raise ValueError(f"tier base {base!r}: expected one of {KINDS}")
        shape = {k: float(params.pop(k)) for k in ("margin", "span") if k in params}
        ladder = price_ladder(cost, Y_train, **shape)
        params = TIER_BASE_PARAMS.get(base, {}) | params
        reps = list(ladder.representatives)
        return cls(base, params, reps, [ds.models[j] for j in reps], ladder)

    def default_target(self) -> str:
        return "best-single" if self.ladder is None else TIER_TARGET

    def targets(self, Y: F64) -> F64:
        return Y if self.ladder is None else ladder_targets(Y, self.ladder)

    def policy_cost(self) -> F64 | None:
        return None if self.ladder is None else np.array(self.ladder.positions)

    def fit(self, X: npt.NDArray[np.float32], Y: F64, seed: int, kind: str) -> TrainedRouter:
        return train_router(kind, X, self.targets(Y), seed=seed, **self.params)


def price_prior(cost: F64, Y_train: F64, unit: str) -> PricePriorSpec | None:
    """A per-model router's cold-start prior: the mean training quality of each rung of the
    data's price ladder at the rung's price (None when costs are not list prices per 1M
    tokens, the unit of request prices, or the data has no step up in price)."""
    if unit != "usd_per_mtok" or (cost <= 0).any():
        return None
    try:
        ladder = price_ladder(cost, Y_train)
    except ValueError:
        return None
    means = ladder_targets(Y_train, ladder).mean(axis=0)
    return PricePriorSpec(
        prices=[float(p) for p in ladder.prices],
        quality=[round(float(q), 6) for q in means],
        mean_quality=round(float(Y_train.mean()), 6),
    )


def _features(
    built: BuiltFeaturizer, ds: RoutingDataset, bar: Bar, what: str
) -> npt.NDArray[np.float32]:
    return encode_all(built, ds.queries, bar(f"featurize {what}", ds.n_queries))


def predict_quality(onnx_bytes: bytes, X: npt.NDArray[np.float32]) -> F64:
    """An exported router's outputs (``quality``) for feature rows ``X``."""
    (out,) = make_session(onnx_bytes).run(["quality"], {"features": X})
    return np.asarray(out, dtype=np.float64)


@dataclass
class _Validated:
    """What the validation slice decided: the router kind, its calibration, λ."""

    kind: str
    calibration: F64 | None
    lam: float
    table: list[dict[str, float]]
    selection: dict[str, Any]


def _validate(
    opts: TrainOptions,
    outputs: _Outputs,
    X: npt.NDArray[np.float32],
    Y_fit: F64,
    Y: F64,
    *,
    cost: F64,
    step: Step,
) -> _Validated:
    """Routers fitted on most training rows, judged on the rest (true quality): the kind
    (``auto``: the candidate with the highest mean gain above the single-model frontier), its
    Platt calibration (``--calibration platt``), and λ for the target."""
    inner = hash_split([str(i) for i in range(len(X))], opts.validation_fraction) == "train"
    target = Target(opts.target or outputs.default_target())
    cols = outputs.columns
    Y_val, Y_in, c = Y[~inner][:, cols], Y[inner][:, cols], cost[cols]
    kinds = AUTO_KINDS if outputs.base == "auto" else (outputs.base,)
    tried: dict[str, tuple[float, F64, F64 | None]] = {}
    for kind in kinds:
        step(f"validate {kind} on {int((~inner).sum())} rows")
        trained = outputs.fit(X[inner], Y_fit[inner], opts.seed, kind)
        S_val = predict_quality(to_onnx(trained, X.shape[1]).SerializeToString(), X[~inner])
        cal = None
        if opts.calibration == "platt":
            cal = platt(S_val, outputs.targets(Y[~inner]))
            S_val = apply_platt(S_val, cal)
        gain = sweep(S_val, Y_val, c, outputs.policy_cost())[1].mean_gain
        tried[kind] = (gain, S_val, cal)
    chosen = max(kinds, key=lambda k: tried[k][0])
    _, S_val, cal = tried[chosen]
    selection: dict[str, Any] = {}
    if len(kinds) > 1:
        gains = {k: round(v[0], 6) for k, v in tried.items()}
        step(f"auto: {chosen} (mean gain above the single models: {gains})")
        selection = {
            "criterion": "mean quality gain above the single-model frontier, validation rows",
            "mean_gain": gains,
            "chosen": chosen,
        }
    step(f"calibrate λ for {target}")
    lam, table = calibrate_lambda(
        S_val, Y_val, Y_in, c, target, policy_cost=outputs.policy_cost(), models=outputs.names
    )
    return _Validated(chosen, cal, lam, table, selection)


@dataclass
class FittedRouter:
    """A featurizer and router fitted on training rows, ready to export or to score rows."""

    built: BuiltFeaturizer
    outputs: _Outputs
    validated: _Validated
    trained: TrainedRouter
    model: onnx.ModelProto
    Y_train: F64

    def scores(self, queries: Sequence[str], progress: Progress | None = None) -> F64:
        """The exported graph's outputs for ``queries`` (featurized by the exported featurizer)."""
        X = encode_all(self.built, queries, progress)
        return predict_quality(self.model.SerializeToString(), X)


def featurize_training(
    opts: TrainOptions, train: RoutingDataset, holdout: Sequence[str], *, step: Step, bar: Bar
) -> tuple[BuiltFeaturizer, npt.NDArray[np.float32]]:
    """The featurizer fitted on ``train`` rows (``holdout`` texts check its parity) and the
    training rows' features, computed by the exported graph."""
    step(f"fit featurizer {opts.featurizer}")
    built = build_featurizer(opts.featurizer, train.queries, holdout[:256], svd_dims=opts.svd_dims)
    return built, _features(built, train, bar, "train")


def fit_router(
    opts: TrainOptions,
    ds: RoutingDataset,
    train: RoutingDataset,
    holdout: Sequence[str],
    *,
    cost: F64,
    step: Step,
    bar: Bar,
    features: tuple[BuiltFeaturizer, npt.NDArray[np.float32]] | None = None,
) -> FittedRouter:
    """Featurizer and router on ``train`` rows of ``ds`` (λ and, for ``auto``, the kind chosen
    on a validation slice of them); ``holdout`` texts check the featurizer's parity.
    ``features``: :func:`featurize_training` of the same rows and options, when several
    routers share one featurizer."""
    built, X_train = features or featurize_training(opts, train, holdout, step=step, bar=bar)
    Y_train = train.quality.astype(np.float64)
    Y_fit = Y_train
    if train.task is not None and opts.task_smoothing < 1.0:
        step(f"task smoothing {opts.task_smoothing} over {len(set(train.task))} tasks")
        Y_fit = smooth_by_task(Y_train, train.task, opts.task_smoothing)
    outputs = _Outputs.of(opts, ds, Y_train, cost)
    if outputs.ladder is not None:
        rungs = outputs.ladder.describe(ds.models)
        step(f"price ladder: {', '.join(str(r['members']) for r in rungs)}")
    val = _validate(opts, outputs, X_train, Y_fit, Y_train, cost=cost, step=step)
    step(f"train {val.kind} on {X_train.shape}")
    trained = replace(outputs.fit(X_train, Y_fit, opts.seed, val.kind), calibration=val.calibration)
    return FittedRouter(built, outputs, val, trained, to_onnx(trained, X_train.shape[1]), Y_train)


def load_for_training(opts: TrainOptions, step: Step) -> RoutingDataset:
    """The dataset of ``opts``; ValueError when a split has no rows."""
    ds = load(opts.data, opts.fmt)
    train, test = ds.train(), ds.test()
    step(f"{ds.name}: {train.n_queries} train / {test.n_queries} test rows, {ds.n_models} models")
    for split, rows in (("train", train), ("test", test)):
        if rows.n_queries == 0:
            raise ValueError(
                f"{opts.data}: no {split} rows; training needs both splits (a 'split' column "
                "of train/test, or leave it empty for a hash split of 20 % test)"
            )
    return ds


def train_bundle(opts: TrainOptions, step: Step, bar: Bar) -> TrainResult:
    """Train and write one bundle; ``step`` reports stages, ``bar`` makes progress counters."""
    start = time.perf_counter()
    ds = load_for_training(opts, step)
    train, test = ds.train(), ds.test()
    costs, unit = model_costs(ds)
    cost = np.array([costs[m] for m in ds.models], dtype=np.float64)
    fitted = fit_router(opts, ds, train, test.queries, cost=cost, step=step, bar=bar)
    built, outputs, val, trained = fitted.built, fitted.outputs, fitted.validated, fitted.trained
    Y_train, lam = fitted.Y_train, val.lam
    X_test = _features(built, test, bar, "test")
    parity = parity_check(trained, fitted.model, X_test)
    step(
        f"parity sklearn vs ONNX: max |diff| {parity['max_abs_diff']:.2e}, same decision "
        f"{parity['decision_agreement']:.4f} ({parity['tie_aware_agreement']:.4f} counting ties)"
    )
    if parity["tie_aware_agreement"] < 1.0:
        raise ValueError(f"parity check failed: ONNX and scikit-learn decide differently: {parity}")
    router_blob = fitted.model.SerializeToString()
    cols = outputs.columns
    report = evaluate_predictions(
        predict_quality(router_blob, X_test),
        test.quality[:, cols].astype(np.float64),
        Y_train[:, cols],
        cost[cols],
        lam=lam,
        models=outputs.names,
        policy_cost=outputs.policy_cost(),
    )
    kind = "tier" if outputs.ladder is not None else val.kind
    name = opts.name or f"{ds.name.split(':')[0]}-{kind}-{opts.featurizer}"
    provenance = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": ds.name,
        "format": opts.fmt,
        "data_file": opts.data.name,
        "split": "dataset split (train/test); λ calibrated on a hash slice of train",
        "train_rows": train.n_queries,
        "test_rows": test.n_queries,
        "router_params": trained.params
        | ({"base": val.kind} if outputs.ladder is not None else {}),
        "quality_calibration": opts.calibration,
        "fit_seconds": round(trained.fit_seconds, 3),
        "parity": parity,
        "featurizer_parity": built.parity,
        "target": opts.target or outputs.default_target(),
        "metrics": {k: report[k] for k in ("router", "best_single", "oracle", "random")}
        | ({"apgr": report["apgr"]["apgr"]} if "apgr" in report else {}),
    }
    if outputs.ladder is not None:
        provenance["ladder"] = outputs.ladder.describe(ds.models)
    if val.selection:
        provenance["selection"] = val.selection
    manifest = write_bundle(
        opts.out,
        name=name,
        router_kind=kind,
        models=list(ds.models),
        model_costs=costs,
        cost_unit=unit,
        featurizer=built.spec,
        files={**built.files, "router.onnx": router_blob},
        default_cost_weight=lam,
        calibration=val.table,
        provenance=provenance,
        ladder=None if outputs.ladder is None else outputs.ladder.positions,
        price_prior=None if outputs.ladder is not None else price_prior(cost, Y_train, unit),
    )
    return TrainResult(manifest, report, time.perf_counter() - start)
