"""``routeiq-bundle train --from-telemetry``: a challenger trained on the service's own traffic,
judged against the router that served that traffic on a later slice of it.

1. Decision events joined with outcome reports (:mod:`converters.datasets.telemetry`) are
   split by time: the latest ``holdout`` share is never trained on.
2. Training rows carry the quality of the answering model only (partial feedback). Each model
   is fitted on the rows it answered (:func:`~converters.routers.fit.train_masked`), a row
   weighted by 1 / the probability the serving router had of choosing that model (clipped at
   ``max_weight``), so that the prompts a router favoured a model for do not stand for all
   prompts. A base dataset (``--data``), with every model's quality per prompt, can be added
   (weight 1).
3. λ is calibrated on a validation slice of the training rows: the smallest λ (the most quality
   bought) whose cost stays, with 95 % confidence, within the serving router's cost there
   (``champion-cost``, the default) or within ``cost:X``.
4. On the held-out slice both policies are judged with the same estimator (SNIPS,
   :mod:`converters.evaluation.off_policy`): the challenger at its λ, and the serving router as
   it decided (its logged scores, without exploration). The result goes into the manifest
   (``provenance.telemetry_evaluation``), where ``routeiq-bundle publish --if-better`` reads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.bundle import write_bundle
from converters.datasets import hash_split, load
from converters.datasets.telemetry import (
    LoggedFeedback,
    join_feedback,
    load_prompt_store,
    read_events,
)
from converters.evaluation import off_policy
from converters.features.build import build_featurizer, encode_all
from converters.routers import parity_check, to_onnx, train_masked
from converters.train import Bar, Step, TrainResult, predict_quality

__all__ = ["ESTIMATOR", "TelemetryOptions", "train_from_telemetry", "verdict"]

F64 = npt.NDArray[np.float64]
MIN_ROWS = 50
ESTIMATOR = (
    "per-model fits on the rows each model answered, weighted by inverse propensity; judged "
    "by self-normalised inverse-propensity scoring (SNIPS) on the held-out time slice"
)


@dataclass
class TelemetryOptions:
    source: str
    out: Path
    router: str = "logistic"
    featurizer: str = "tfidf"
    name: str | None = None
    """The router whose decisions to learn from (None: the only one in the telemetry)."""
    data: Path | None = None
    fmt: str = "wide"
    holdout: float = 0.2
    validation_fraction: float = 0.2
    seed: int = 0
    svd_dims: int | None = 256
    params: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    """``champion-cost`` (default) or ``cost:X`` (USD per 1M tokens)."""
    max_weight: float = 50.0
    prompts: Path | None = None
    """Your own prompts (JSONL), joined to events without text by their keyed hash."""
    hash_key: Path = Path("var/prompt-hash.key")
    """The service's prompt-hash key (``telemetry.events.hash_key_file``), for ``prompts``."""


def _target_budget(target: str | None, champion_cost: float) -> tuple[str, float]:
    spec = target or "champion-cost"
    if spec == "champion-cost":
        return spec, champion_cost
    kind, _, value = spec.partition(":")
    if kind == "cost":
        try:
            return spec, float(value)
        except ValueError:
            pass
    raise ValueError(f"target {spec!r}: from telemetry use champion-cost or cost:X")


@dataclass
class _Rows:
    texts: list[str]
    Y: F64
    seen: F64
    weight: F64


def _rows(fb: LoggedFeedback, max_weight: float) -> _Rows:
    n, m = fb.n, len(fb.models)
    Y, seen, w = np.zeros((n, m)), np.zeros((n, m)), np.zeros((n, m))
    rows = np.arange(n)
    Y[rows, fb.action] = fb.quality
    seen[rows, fb.action] = 1.0
    w[rows, fb.action] = np.minimum(1.0 / fb.propensity, max_weight)
    return _Rows(list(fb.prompts), Y, seen, w)


def _with_base(rows: _Rows, opts: TelemetryOptions, models: tuple[str, ...], step: Step) -> _Rows:
    """The telemetry rows plus the base dataset's training rows, for the models both know."""
    if opts.data is None:
        return rows
    base = load(opts.data, opts.fmt).train()
    shared = [m for m in models if m in base.models]
    step(f"base data {base.name}: {base.n_queries} rows, {len(shared)} of the models")
    if not shared:
        raise ValueError(f"{opts.data}: none of the telemetry's models {list(models)}")
    Y = np.zeros((base.n_queries, len(models)))
    seen = np.zeros_like(Y)
    for m in shared:
        j = models.index(m)
        Y[:, j] = base.quality[:, base.models.index(m)]
        seen[:, j] = 1.0
    return _Rows(
        rows.texts + list(base.queries),
        np.vstack([rows.Y, Y]),
        np.vstack([rows.seen, seen]),
        np.vstack([rows.weight, seen]),
    )


def _calibrate(
    S: F64, val: LoggedFeedback, budget: float, seed: int
) -> tuple[float, list[dict[str, float]]]:
    """The smallest λ whose cost stays within ``budget`` with 95 % confidence (mean cost plus
    1.645 standard errors over the validation rows; none does: the cheapest λ), and the sweep as
    the manifest's calibration table. Cost is exact per row; estimated quality is not, and
    picking the best-looking of many noisy points would flatter it, so λ is chosen by cost."""
    rows = np.arange(val.n)
    top = np.nanmax(np.where(val.offered, val.price, np.nan), axis=1)
    table, ok = [], []
    for lam, choice in off_policy.choices(S, val):
        paid = val.price[rows, choice]
        quality = off_policy.value(choice, val, seed).quality
        point = {
            "cost_weight": lam,
            "avg_quality": quality if np.isfinite(quality) else 0.0,
            "avg_cost": float(paid.mean()),
            "top_cost_share": float(np.mean(paid >= top - 1e-12)),
        }
        table.append(point)
        if paid.mean() + 1.645 * paid.std() / np.sqrt(val.n) <= budget + 1e-9:
            ok.append(point)
    best = (
        min(ok, key=lambda p: p["cost_weight"]) if ok else min(table, key=lambda p: p["avg_cost"])
    )
    return float(best["cost_weight"]), table


def verdict(evaluation: dict[str, Any], margin: float, cost_tolerance: float) -> tuple[bool, str]:
    """Whether a challenger beats the champion on the held-out slice: estimated quality gain at
    least ``margin``, its one-sided 95 % lower bound above 0, cost at most the champion's times
    (1 + ``cost_tolerance``); and the sentence that says why either way."""
    cmp = evaluation["comparison"]
    gain, low, ratio = cmp["quality_gain"], cmp["quality_gain_lower95"], cmp["cost_ratio"]
    challenger, champion = evaluation["challenger"], evaluation["champion"]
    facts = (
        f"quality {challenger['quality']:.4f} vs {champion['quality']:.4f}"
        f" (gain {gain:+.4f} ± {cmp['quality_gain_se']:.4f}, 95 % lower bound {low:+.4f}), cost "
        f"{ratio:.3f}× the champion's, on {evaluation['rows']} held-out requests"
    )
    if not gain >= margin:
        return False, f"not better: gain below the margin {margin:g}; {facts}"
    if not low > 0:
        return False, f"not better: the gain is within noise; {facts}"
    if not ratio <= 1.0 + cost_tolerance:
        return False, f"not better: costs more than {1 + cost_tolerance:g}× the champion; {facts}"
    return True, f"better: {facts}"


def train_from_telemetry(opts: TelemetryOptions, step: Step, bar: Bar) -> TrainResult:
    start = time.perf_counter()
    prompts = None
    if opts.prompts is not None:
        try:
            key = bytes.fromhex(opts.hash_key.read_text().strip())
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"--hash-key {opts.hash_key}: not the service's key file ({exc})"
            ) from None
        prompts = load_prompt_store(opts.prompts, key)
        step(f"{len(prompts)} prompts of your own from {opts.prompts}, joined by keyed hash")
    step(f"read telemetry from {opts.source}")
    fb, stats = join_feedback(read_events(opts.source), opts.name, prompts)
    dropped = ", ".join(f"{k} {v}" for k, v in stats.dropped.items()) or "none"
    step(
        f"{stats.decisions} decisions, {stats.outcomes} outcomes: {stats.joined} joined rows of "
        f"router {fb.router} over {len(fb.models)} models (left out: {dropped})"
    )
    train_fb, held = fb.time_split(opts.holdout)
    if train_fb.n < MIN_ROWS or held.n < MIN_ROWS:
        raise ValueError(
            f"{fb.n} joined rows: too few to train and judge ({MIN_ROWS} needed on each side of "
            f"the {opts.holdout:g} held-out slice)"
        )
    explored = float(np.mean(train_fb.propensity < 1.0))
    step(
        f"train on {train_fb.n} rows, judge on the latest {held.n}; {explored:.0%} of training "
        "rows were logged with exploration on"
    )
    inner = hash_split([str(i) for i in range(train_fb.n)], opts.validation_fraction) == "train"
    val = train_fb.subset(~inner)
    rows = _with_base(_rows(train_fb, opts.max_weight), opts, fb.models, step)
    fit_rows = np.concatenate([inner, np.ones(len(rows.texts) - train_fb.n, dtype=bool)])

    step(f"fit featurizer {opts.featurizer}")
    built = build_featurizer(
        opts.featurizer, rows.texts, list(held.prompts[:256]), svd_dims=opts.svd_dims
    )
    X = encode_all(built, rows.texts, bar("featurize train", len(rows.texts)))
    X_held = encode_all(built, list(held.prompts), bar("featurize held-out", held.n))

    def fit(mask: npt.NDArray[np.bool_]) -> Any:
        return train_masked(
            opts.router,
            X[mask],
            rows.Y[mask],
            rows.seen[mask],
            rows.weight[mask],
            seed=opts.seed,
            **opts.params,
        )

    step(f"validate {opts.router} on {val.n} rows")
    S_val = predict_quality(
        to_onnx(fit(fit_rows), X.shape[1]).SerializeToString(), X[: train_fb.n][~inner]
    )
    target, budget = _target_budget(
        opts.target, off_policy.value(off_policy.logged_greedy(val), val).cost
    )
    lam, table = _calibrate(S_val, val, budget, opts.seed)
    step(f"λ {lam:.4g} for {target} (cost ≤ {budget:.4g})")

    step(f"train {opts.router} on {len(rows.texts)} rows")
    trained = fit(np.ones(len(rows.texts), dtype=bool))
    model = to_onnx(trained, X.shape[1])
    parity = parity_check(trained, model, X_held)
    if parity["tie_aware_agreement"] < 1.0:
        raise ValueError(f"parity check failed: ONNX and the fit decide differently: {parity}")
    blob = model.SerializeToString()
    S_held = predict_quality(blob, X_held)
    evaluation = _evaluate(S_held, held, lam, opts.seed)
    evaluation["training_rows"] = train_fb.n
    step(
        f"held-out: challenger {evaluation['challenger']['quality']:.4f} at cost "
        f"{evaluation['challenger']['cost']:.4g}, champion {evaluation['champion']['quality']:.4f}"
        f" at {evaluation['champion']['cost']:.4g}"
    )
    costs = {m: float(np.median(fb.price[fb.offered[:, j], j])) for j, m in enumerate(fb.models)}
    report = {
        "router": fb.router,
        "kind": opts.router,
        "join": stats.as_dict(),
        "estimator": ESTIMATOR,
        "evaluation": evaluation,
    }
    manifest = write_bundle(
        opts.out,
        name=fb.router,
        router_kind=opts.router,
        models=list(fb.models),
        model_costs=costs,
        featurizer=built.spec,
        files={**built.files, "router.onnx": blob},
        default_cost_weight=lam,
        calibration=table,
        provenance={
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dataset": f"telemetry:{fb.router}",
            "format": "telemetry",
            "base_data": None if opts.data is None else opts.data.name,
            "split": f"time: the latest {opts.holdout:g} of joined requests held out",
            "train_rows": train_fb.n,
            "test_rows": held.n,
            "join": stats.as_dict(),
            "estimator": ESTIMATOR,
            "router_params": trained.params,
            "parity": parity,
            "featurizer_parity": built.parity,
            "target": target,
            "telemetry_evaluation": evaluation,
        },
    )
    return TrainResult(manifest, report, time.perf_counter() - start)


def _evaluate(S: F64, held: LoggedFeedback, lam: float, seed: int) -> dict[str, Any]:
    challenger = off_policy.choose(S, held, lam)
    champion = off_policy.logged_greedy(held)
    versions = sorted(set(held.version), key=held.version.count, reverse=True)
    rows = np.arange(held.n)
    singles = {
        m: {
            "avg_quality": off_policy.value(np.full(held.n, j), held, seed).quality,
            "avg_cost": float(held.price[rows, j].mean()),
        }
        for j, m in enumerate(held.models)
        if held.offered[:, j].all()
    }
    return {
        "rows": held.n,
        "champion_version": versions[0] if versions else "",
        "single_models": singles,
        "challenger": off_policy.value(challenger, held, seed).as_dict() | {"cost_weight": lam},
        "champion": off_policy.value(champion, held, seed).as_dict(),
        "comparison": off_policy.compare(challenger, champion, held, seed),
        "curves": {
            "challenger": off_policy.curve(S, held, seed),
            "champion": off_policy.curve(held.logged_quality, held, seed),
        },
    }
