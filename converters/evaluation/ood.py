"""Out-of-domain evaluation: how much of a router's gain survives on tasks it never saw.

``routeiq-bundle ood`` trains the router as ``train`` does, twice over: once on all training
rows (in domain), and once per fold of tasks on the training rows of the *other* tasks (the
featurizer too: its vocabulary never sees the held-out task). Each fold's router scores the test
rows of its held-out tasks. Folds are the tasks themselves when there are at most
:data:`MAX_FOLDS`, else that many groups of tasks by a hash of the task name (RouteLLM's 57
MMLU subjects).

Reported, pooled over the test rows of every fold and per fold: the router at its calibrated λ
against the best single model (chosen on the rows it was trained on), and the mean quality gain
above the single-model frontier over the λ sweep, in domain and out of domain. ``survives`` is
the out-of-domain gain over the in-domain gain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.datasets.core import unit_hash
from converters.evaluation import policies as ev
from converters.evaluation.report import curve_axes, curve_points, save_plot, single_models
from converters.train import TrainOptions, fit_router, load_for_training, model_costs

__all__ = ["MAX_FOLDS", "out_of_domain", "plot_ood", "quiet", "task_folds"]

F64 = npt.NDArray[np.float64]
MAX_FOLDS = 16
Step = Callable[[str], None]
Bar = Callable[[str, int], Callable[[int], None]]


def task_folds(tasks: Sequence[str], max_folds: int = MAX_FOLDS) -> dict[str, list[str]]:
    """Fold name → its tasks: one fold per task, or ``max_folds`` hash groups of tasks."""
    names = sorted(set(tasks))
    if len(names) <= max_folds:
        return {n: [n] for n in names}
    groups: dict[int, list[str]] = {}
    for n in names:
        groups.setdefault(int(unit_hash(n) * max_folds), []).append(n)
    return {
        f"{len(g)} tasks: {', '.join(g[:3])}{', …' if len(g) > 3 else ''}": g
        for g in sorted(groups.values())
    }


def quiet(message: str) -> None:
    """Each fit's own stages: not shown (the folds' progress is)."""
    del message


def _single(names: Sequence[str], j: int, Y: F64, cost: F64) -> dict[str, Any]:
    return {"model": names[j], "avg_quality": float(Y[:, j].mean()), "avg_cost": float(cost[j])}


def _point(S: F64, Y: F64, cost: F64, lam: float, weighed: F64) -> dict[str, float]:
    res = ev.evaluate_choice(ev.choose_utility(S, weighed, lam), Y, cost)
    return {"avg_quality": res.avg_quality, "avg_cost": res.avg_cost}


def _curve(S: F64, Y: F64, cost: F64, weighed: F64) -> tuple[list[dict[str, float]], float]:
    """The λ sweep's points and the mean gain above the single-model frontier."""
    curve, gain = ev.sweep(S, Y, cost, weighed)
    return curve_points(curve), gain.mean_gain


def out_of_domain(
    opts: TrainOptions, step: Step, bar: Bar, max_folds: int = MAX_FOLDS
) -> dict[str, Any]:
    """The report described in the module docstring (plain JSON-able data)."""
    if opts.router == "tier":
        raise ValueError(
            "ood evaluates per-model routers; judge a tier bundle on other data with "
            "`routeiq-bundle eval` (its price ladder would differ from fold to fold)"
        )
    ds = load_for_training(opts, step)
    if ds.task is None or len(set(ds.task)) < 2:
        raise ValueError(f"{ds.name}: out-of-domain evaluation needs a task per row, 2+ tasks")
    costs, _ = model_costs(ds)
    cost = np.array([costs[m] for m in ds.models], dtype=np.float64)
    train, test = ds.train(), ds.test()
    step("in domain: all training tasks")
    full = fit_router(opts, ds, train, test.queries, cost=cost, step=quiet, bar=bar)
    cols, weighed_in = full.outputs.columns, full.outputs.policy_cost()
    c = cost[cols]
    weighed = c if weighed_in is None else weighed_in
    Y_test = test.quality[:, cols].astype(np.float64)
    S_in = full.scores(test.queries, bar("score test", test.n_queries))
    S_ood = np.full_like(S_in, np.nan)
    lam_ood = np.zeros(len(S_in))
    train_tasks, test_tasks = np.asarray(train.task), np.asarray(test.task)
    folds: list[dict[str, Any]] = []
    for i, (fold, names) in enumerate(task_folds(ds.task, max_folds).items(), 1):
        held = np.isin(test_tasks, names)
        if not held.any():
            continue
        step(f"fold {i}: hold out {fold} ({int(held.sum())} test rows)")
        rest = train.subset(~np.isin(train_tasks, names), "-ood")
        queries = [q for q, h in zip(test.queries, held, strict=True) if h]
        fitted = fit_router(opts, ds, rest, queries, cost=cost, step=quiet, bar=bar)
        S_ood[held] = fitted.scores(queries)
        lam_ood[held] = fitted.validated.lam
        best = ev.best_single_index(rest.quality[:, cols], c)
        y = Y_test[held]
        folds.append(
            {
                "fold": fold,
                "rows": int(held.sum()),
                "best_single": _single(full.outputs.names, best, y, c),
                "in_domain": _point(S_in[held], y, c, full.validated.lam, weighed),
                "out_of_domain": _point(S_ood[held], y, c, fitted.validated.lam, weighed),
            }
        )
    covered = ~np.isnan(S_ood).any(axis=1)
    S_o, S_i, Y = S_ood[covered], S_in[covered], Y_test[covered]
    routed = ev.choose_utility_per_row(S_o, weighed, lam_ood[covered])  # each fold at its λ
    ood_point = ev.evaluate_choice(routed, Y, c)
    curve_in, gain_in = _curve(S_i, Y, c, weighed)
    curve_ood, gain_ood = _curve(S_o, Y, c, weighed)
    best = ev.best_single_index(train.quality[:, cols], c)
    report: dict[str, Any] = {
        "dataset": ds.name,
        "router": opts.router,
        "featurizer": opts.featurizer,
        "rows": int(covered.sum()),
        "folds": folds,
        "best_single": _single(full.outputs.names, best, Y, c),
        "in_domain": _point(S_i, Y, c, full.validated.lam, weighed)
        | {"mean_gain": gain_in, "curve": curve_in},
        "out_of_domain": {
            "avg_quality": ood_point.avg_quality,
            "avg_cost": ood_point.avg_cost,
            "mean_gain": gain_ood,
            "curve": curve_ood,
        },
        "single_models": single_models(full.outputs.names, Y, c),
        "survives": gain_ood / gain_in if gain_in > 0 else float("nan"),
    }
    if len(cols) == 2:
        strong = int(np.argmax(c))
        weak = 1 - strong
        for key, S in (("in_domain", S_i), ("out_of_domain", S_o)):
            gap = S[:, strong] - S[:, weak]
            report[key]["apgr"] = ev.apgr(gap, Y[:, weak], Y[:, strong]).apgr
    return report


def plot_ood(report: dict[str, Any], path: Path, cost_unit: str = "") -> Path:
    """Both cost–quality curves (in and out of domain) over the single models."""
    curves = [
        (report[key]["curve"], f"{label} (gain {report[key]['mean_gain']:.4f})")
        for key, label in (("in_domain", "in domain"), ("out_of_domain", "tasks held out"))
    ]
    fig, ax = curve_axes(curves, report["single_models"], singles_color="gray")
    title = (
        f"{report['dataset']}: {report['router']} x {report['featurizer']}, "
        f"{report['survives']:.0%} of the gain survives"
    )
    return save_plot(fig, ax, path, xlabel=f"average cost {cost_unit}".strip(), title=title)
