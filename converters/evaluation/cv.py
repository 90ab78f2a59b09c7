"""Cross-validation: router kinds compared on every row of a dataset, with their sampling error.

``routeiq-bundle cv`` pools a dataset's rows (both splits) and cuts them into ``folds`` by a hash
of the prompt, so a prompt that occurs twice never sits on both sides of a fold. For each fold it
fits the featurizer on the other folds' rows, then each router kind as ``train`` would (its own
validation slice, calibration and λ), and scores the fold's rows. Every row is so scored once by
a router that never saw it (out of fold), which gives figures on k times the rows of one test
split, and a paired comparison: all kinds are judged on the same rows.

Reported per kind, pooled over the rows: the quality and cost at each fold's calibrated λ, the
mean quality gain above the single-model frontier over the λ sweep, the largest cost step between
neighbouring λ, the λ where the curve falls below the frontier (and by how much at worst), and
for two models APGR — each with a 90 % bootstrap interval over the rows; for every other kind,
the paired difference from the first one (same resampled rows) with its interval. An interval
that holds 0 means these rows cannot tell the two kinds apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.datasets.core import unit_hash
from converters.evaluation import policies as ev
from converters.evaluation.ood import quiet
from converters.evaluation.report import (
    INTERVAL_LEVEL,
    apgr_interval,
    curve_axes,
    curve_points,
    max_cost_jump,
    save_plot,
    single_models,
)
from converters.features.build import encode_all
from converters.train import (
    Bar,
    Step,
    TrainOptions,
    featurize_training,
    fit_router,
    load_for_training,
    model_costs,
    predict_quality,
)

__all__ = ["GAIN_DRAWS", "cross_validate", "fold_of", "plot_cv"]

F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
GAIN_DRAWS = 200
"""Bootstrap draws for the mean frontier gain (each one a whole λ sweep; other figures: 1000)."""


def fold_of(queries: Sequence[str], folds: int) -> IntArray:
    """Each row's fold, ``0 .. folds − 1``, from a hash of its prompt (equal prompts share one)."""
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    return np.array([int(unit_hash(q) * folds) for q in queries], dtype=np.int64)


class _Scored:
    """One kind's out-of-fold scores and each row's calibrated λ (its fold's); once every
    fold is in, :meth:`settle` sets each row's choice at that λ and the quality it gets, and
    ``report`` is its :func:`_kind_report`."""

    def __init__(self, n: int, m: int) -> None:
        self.S = np.full((n, m), np.nan)
        self.lam = np.zeros(n)
        self.choice = np.zeros(n, dtype=np.int64)
        self.got = np.zeros(n)
        self.report: dict[str, Any] = {}

    def settle(self, Y: F64, cost: F64) -> None:
        self.choice = ev.choose_utility_per_row(self.S, cost, self.lam)
        self.got = Y[np.arange(len(Y)), self.choice]


def _gain(S: F64, Y: F64, cost: F64) -> float:
    return ev.sweep(S, Y, cost)[1].mean_gain


def _gap(S: F64, strong: int) -> F64:
    """The router's preference for the strong model of two (what APGR ranks rows by)."""
    return np.asarray(S[:, strong] - S[:, 1 - strong], dtype=np.float64)


def _interval(stat: Callable[[IntArray], float], n: int, draws: int = 1000) -> list[float]:
    return list(ev.bootstrap_interval(stat, n, level=INTERVAL_LEVEL, draws=draws))


def _kind_report(scored: _Scored, Y: F64, cost: F64, names: Sequence[str]) -> dict[str, Any]:
    S, got, n = scored.S, scored.got, len(Y)
    at_lam = ev.evaluate_choice(scored.choice, Y, cost)
    curve, gain = ev.sweep(S, Y, cost)
    below = ev.frontier_shortfalls(curve, ev.single_points(Y, cost))
    out: dict[str, Any] = {
        "avg_quality": at_lam.avg_quality,
        "avg_cost": at_lam.avg_cost,
        "call_share": dict(zip(names, at_lam.call_share, strict=True)),
        "quality_interval": _interval(lambda i: float(got[i].mean()), n),
        "mean_gain": gain.mean_gain,
        "gain_interval": _interval(lambda i: _gain(S[i], Y[i], cost), n, draws=GAIN_DRAWS),
        "max_cost_jump": max_cost_jump(curve, float(np.max(cost))),
        "below_frontier": [p.lam for p, _ in below],
        "worst_shortfall": max((reach - p.avg_quality for p, reach in below), default=0.0),
        "curve": curve_points(curve),
    }
    if Y.shape[1] == 2:
        strong = int(np.argmax(cost))
        gap, weak = _gap(S, strong), 1 - strong
        out["apgr"] = ev.apgr(gap, Y[:, weak], Y[:, strong]).apgr
        out["apgr_interval"] = list(apgr_interval(gap, Y[:, weak], Y[:, strong]))
    return out


def _paired(a: _Scored, b: _Scored, Y: F64, cost: F64) -> dict[str, Any]:
    """``b`` minus ``a`` on the same resampled rows."""
    got_a, got_b, n = a.got, b.got, len(Y)
    rep_a, rep_b = a.report, b.report
    out: dict[str, Any] = {
        "quality": float((got_b - got_a).mean()),
        "quality_interval": _interval(lambda i: float((got_b[i] - got_a[i]).mean()), n),
        "mean_gain": rep_b["mean_gain"] - rep_a["mean_gain"],
        "gain_interval": _interval(
            lambda i: _gain(b.S[i], Y[i], cost) - _gain(a.S[i], Y[i], cost),
            n,
            draws=GAIN_DRAWS,
        ),
    }
    if Y.shape[1] == 2:
        strong = int(np.argmax(cost))
        gap_a, gap_b, weak = _gap(a.S, strong), _gap(b.S, strong), 1 - strong

        def diff(i: IntArray) -> float:
            yw, ys = Y[i, weak], Y[i, strong]
            return ev.apgr(gap_b[i], yw, ys).apgr - ev.apgr(gap_a[i], yw, ys).apgr

        out["apgr"] = rep_b["apgr"] - rep_a["apgr"]
        out["apgr_interval"] = _interval(diff, n)
    return out


def cross_validate(
    opts: TrainOptions, kinds: Sequence[str], step: Step, bar: Bar, folds: int = 5
) -> dict[str, Any]:
    """The report described in the module docstring (plain JSON-able data) for router
    ``kinds`` (``opts.router`` is ignored; every other option applies to each kind)."""
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"cv needs one or more distinct router kinds, got {list(kinds)}")
    if "tier" in kinds:
        raise ValueError(
            "cv compares per-model routers; judge a tier bundle with `routeiq-bundle eval`"
        )
    ds = load_for_training(opts, step)
    costs, unit = model_costs(ds)
    cost = np.array([costs[m] for m in ds.models], dtype=np.float64)
    fold = fold_of(ds.queries, folds)
    if len(np.unique(fold)) < folds:
        raise ValueError(f"{ds.name}: {ds.n_queries} rows do not fill {folds} folds")
    Y = ds.quality.astype(np.float64)
    scored = {k: _Scored(*Y.shape) for k in kinds}
    for f in range(folds):
        held = fold == f
        rest = ds.subset(~held, f"-cv{f}")
        queries = [q for q, h in zip(ds.queries, held, strict=True) if h]
        step(f"fold {f + 1}/{folds}: train on {int((~held).sum())} rows, score {int(held.sum())}")
        features = featurize_training(opts, rest, queries, step=quiet, bar=bar)
        X_held = encode_all(features[0], queries, bar("featurize fold", len(queries)))
        for kind in kinds:
            fitted = fit_router(
                replace(opts, router=kind),
                ds,
                rest,
                queries,
                cost=cost,
                step=quiet,
                bar=bar,
                features=features,
            )
            scored[kind].S[held] = predict_quality(fitted.model.SerializeToString(), X_held)
            scored[kind].lam[held] = fitted.validated.lam
    step(f"bootstrap intervals over {len(Y)} rows")
    for k in kinds:
        scored[k].settle(Y, cost)
        scored[k].report = _kind_report(scored[k], Y, cost, ds.models)
    first = scored[kinds[0]]
    return {
        "dataset": ds.name.split(":")[0],
        "featurizer": opts.featurizer,
        "rows": len(Y),
        "folds": folds,
        "cost_unit": unit,
        "level": INTERVAL_LEVEL,
        "best_single": _best_single(ds.models, Y, cost),
        "single_models": single_models(ds.models, Y, cost),
        "kinds": {k: scored[k].report for k in kinds},
        "versus_first": {k: _paired(first, scored[k], Y, cost) for k in kinds[1:]},
    }


def _best_single(models: Sequence[str], Y: F64, cost: F64) -> dict[str, Any]:
    """The best single model on all rows (what cross-validation compares against)."""
    j = ev.best_single_index(Y, cost)
    return {"model": models[j], "avg_quality": float(Y[:, j].mean()), "avg_cost": float(cost[j])}


def plot_cv(report: dict[str, Any], path: Path) -> Path:
    """Each kind's out-of-fold cost–quality curve over the single models."""
    curves = [(r["curve"], f"{k} (gain {r['mean_gain']:.4f})") for k, r in report["kinds"].items()]
    fig, ax = curve_axes(curves, report["single_models"], singles_color="gray")
    title = f"{report['dataset']}: {report['folds']}-fold, {report['featurizer']} features"
    return save_plot(fig, ax, path, xlabel=f"average cost {report['cost_unit']}", title=title)
