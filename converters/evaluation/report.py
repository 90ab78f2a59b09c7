"""Evaluation reports: a router's predictions against the truth, baselines, the cost–quality
curve over a λ sweep, APGR for two-model sets, bootstrap intervals of the headline figures,
calibration of the default λ, and the plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converters.evaluation import policies as ev

__all__ = [
    "INTERVAL_LEVEL",
    "Target",
    "apgr_interval",
    "below_frontier",
    "calibrate_lambda",
    "curve_axes",
    "curve_points",
    "evaluate_predictions",
    "intervals",
    "max_cost_jump",
    "plot_curve",
    "save_plot",
    "single_models",
]

F64 = npt.NDArray[np.float64]
INTERVAL_LEVEL = 0.9
"""The central share of the bootstrap distribution that ``eval`` reports (``intervals``)."""


class Target:
    """A calibration target: ``best-single`` (cost ≤ the best single model's), an average cost
    (``cost:X``, in the bundle's cost unit), a share of calls to the most expensive model
    (``top-share:S``, 0..1), or a share of a model's quality kept at the lowest cost: the best
    single model's (``quality-share:F``) or a named one's (``quality-of:MODEL:F``), F in 0..1."""

    KINDS = ("best-single", "cost", "top-share", "quality-share", "quality-of")

    def __init__(self, spec: str) -> None:
        kind, _, value = spec.partition(":")
        self.model: str | None = None
        if kind == "quality-of":
            self.model, _, value = value.rpartition(":")  # model names may hold ':'
        if kind not in self.KINDS or (kind != "best-single" and not value) or self.model == "":
            raise ValueError(
                f"target {spec!r}: use best-single, cost:X, top-share:S, quality-share:F or "
                "quality-of:MODEL:F"
            )
        try:
            self.value = float(value) if value else 0.0
        except ValueError:
            raise ValueError(f"target {spec!r}: {value!r} is not a number") from None
        self.kind = kind

    def __str__(self) -> str:
        if self.kind == "best-single":
            return self.kind
        if self.model is not None:
            return f"{self.kind}:{self.model}:{self.value:g}"
        return f"{self.kind}:{self.value:g}"


def _top_share(S: F64, cost: F64, lam: float) -> float:
    choice = ev.choose_utility(S, cost, lam)
    return float(np.mean(choice == int(np.argmax(cost))))


def calibrate_lambda(
    S: F64,
    Y: F64,
    Y_ref: F64,
    cost: F64,
    target: Target,
    *,
    policy_cost: F64 | None = None,
    models: Sequence[str] = (),
) -> tuple[float, list[dict[str, float]]]:
    """The λ meeting ``target`` on these rows, and the calibration table (the sweep).

    Cost targets take the smallest λ whose average cost is within budget (when none is, the
    largest λ of the sweep: the cheapest routing); quality targets the cheapest point keeping
    the quality (when none does, λ = 0). ``Y_ref`` picks the best single model (use training
    rows); ``models`` names the columns (for ``quality-of``). ``policy_cost``: what λ weighs,
    when not ``cost`` (see :func:`~converters.evaluation.policies.cost_quality_curve`).
    """
    weighed = cost if policy_cost is None else policy_cost
    lambdas = ev.default_lambdas(S, weighed)
    curve = ev.cost_quality_curve(S, Y, cost, lambdas, weighed)
    table = [
        {
            "cost_weight": p.lam,
            "avg_quality": p.avg_quality,
            "avg_cost": p.avg_cost,
            "top_cost_share": _top_share(S, weighed, p.lam),
        }
        for p in curve
    ]
    best = ev.best_single_index(Y_ref, cost)
    if target.model is not None:
        if target.model not in models:
            raise ValueError(
                f"target {target}: {target.model!r} is not one of the models judged here: "
                f"{', '.join(models)}"
            )
        best = list(models).index(target.model)
    if target.kind in ("quality-share", "quality-of"):
        floor = target.value * float(Y[:, best].mean())
        kept = [row for row in table if row["avg_quality"] >= floor - 1e-12]
        if not kept:
            return 0.0, table
        cheapest = min(kept, key=lambda r: (r["avg_cost"], r["cost_weight"]))
        return float(cheapest["cost_weight"]), table
    if target.kind == "top-share":
        ok = [row for row in table if row["top_cost_share"] <= target.value + 1e-12]
    else:
        budget = float(cost[best]) if target.kind == "best-single" else target.value
        ok = [row for row in table if row["avg_cost"] <= budget + 1e-12]
    chosen = (
        min(ok, key=lambda r: r["cost_weight"])
        if ok
        else max(table, key=lambda r: r["cost_weight"])
    )
    return float(chosen["cost_weight"]), table


def evaluate_predictions(
    S: F64,
    Y_test: F64,
    Y_train: F64,
    cost: F64,
    *,
    lam: float,
    models: Sequence[str],
    policy_cost: F64 | None = None,
) -> dict[str, Any]:
    """Everything ``routeiq-bundle eval`` reports, as plain JSON-able data. ``policy_cost``:
    what λ weighs, when not ``cost`` (a tier router's price positions)."""
    weighed = cost if policy_cost is None else policy_cost
    choice = ev.choose_utility(S, weighed, lam)
    routed = ev.evaluate_choice(choice, Y_test, cost)
    base = ev.baselines(Y_train, Y_test, cost)
    curve, gain = ev.sweep(S, Y_test, cost, weighed)
    out: dict[str, Any] = {
        "rows": len(Y_test),
        "cost_weight": lam,
        "router": _policy(routed, models),
        "best_single": _policy(base["best_single"], models)
        | {"model": models[ev.best_single_index(Y_train, cost)]},
        "oracle": _policy(base["oracle"], models),
        "random": _policy(base["random"], models),
        "single_models": single_models(models, Y_test, cost),
        "curve": curve_points(curve),
        "frontier_gain": {
            "area": gain.area,
            "mean_gain": gain.mean_gain,
            "cost_range": list(gain.cost_range),
        },
        "below_frontier": below_frontier(
            S, Y_test, cost, weighed=weighed, curve=curve, models=models
        ),
        "max_cost_jump": max_cost_jump(curve, float(np.max(cost))),
        "intervals": intervals(Y_test, choice, ev.best_single_index(Y_train, cost)),
    }
    if len(models) == 2:
        strong = int(np.argmax(cost))
        weak = 1 - strong
        gap = S[:, strong] - S[:, weak]
        res = ev.apgr(gap, Y_test[:, weak], Y_test[:, strong])
        out["apgr"] = {
            "strong": models[strong],
            "weak": models[weak],
            "apgr": res.apgr,
            "random_apgr": ev.random_apgr(Y_test[:, weak], Y_test[:, strong]),
            "interval": apgr_interval(gap, Y_test[:, weak], Y_test[:, strong]),
            "points": [list(p) for p in res.points],
        }
    return out


def intervals(Y: F64, choice: npt.ArrayLike, best: int) -> dict[str, Any]:
    """Bootstrap intervals (:func:`~converters.evaluation.policies.bootstrap_interval`) over
    the evaluation rows: the router's average quality at its λ (``choice``) and its difference
    from the best single model (column ``best``) on the same resampled rows. A target inside
    an interval is neither met nor missed by these rows."""
    ch = np.asarray(choice, dtype=np.int64)
    got = Y[np.arange(len(Y)), ch]
    return {
        "level": INTERVAL_LEVEL,
        "router_quality": ev.bootstrap_interval(
            lambda i: float(got[i].mean()), len(Y), level=INTERVAL_LEVEL
        ),
        "vs_best_single": ev.bootstrap_interval(
            lambda i: float((got[i] - Y[i, best]).mean()), len(Y), level=INTERVAL_LEVEL
        ),
    }


def apgr_interval(gap: F64, y_weak: F64, y_strong: F64) -> tuple[float, float]:
    """The bootstrap interval of RouteLLM's APGR over the evaluation rows (``gap``: the
    router's preference for the strong model per row)."""
    return ev.bootstrap_interval(
        lambda i: ev.apgr(gap[i], y_weak[i], y_strong[i]).apgr, len(gap), level=INTERVAL_LEVEL
    )


def below_frontier(
    S: F64,
    Y: F64,
    cost: F64,
    *,
    weighed: F64,
    curve: Sequence[ev.CurvePoint],
    models: Sequence[str],
) -> list[dict[str, Any]]:
    """The λ of the sweep whose operating point lies below the single-model frontier (what
    randomly mixing single models reaches at the same average cost), each with the shortfall
    and where the router sends its prompts there (``call_share``): the evidence for why."""
    out = []
    for point, reachable in ev.frontier_shortfalls(curve, ev.single_points(Y, cost)):
        res = ev.evaluate_choice(ev.choose_utility(S, weighed, point.lam), Y, cost)
        out.append(
            {
                "cost_weight": point.lam,
                "avg_cost": point.avg_cost,
                "avg_quality": point.avg_quality,
                "frontier_quality": reachable,
                "shortfall": reachable - point.avg_quality,
                "call_share": {m: share for m, share in zip(models, res.call_share, strict=True)},
            }
        )
    return out


def max_cost_jump(curve: Sequence[ev.CurvePoint], top_cost: float) -> float:
    """The largest change of average cost between neighbouring points of a λ sweep (10 per
    decade: :func:`~converters.evaluation.policies.default_lambdas`), as a share of the most
    expensive model's cost: how smoothly λ moves the router along its curve."""
    costs = [p.avg_cost for p in sorted(curve, key=lambda p: p.lam)]
    if len(costs) < 2 or top_cost <= 0:
        return 0.0
    return float(np.max(np.abs(np.diff(costs)))) / top_cost


def single_models(models: Sequence[str], Y: F64, cost: F64) -> dict[str, dict[str, float]]:
    """Each model's average cost and quality on these rows, always used alone."""
    return {
        m: {"avg_cost": float(cost[j]), "avg_quality": float(Y[:, j].mean())}
        for j, m in enumerate(models)
    }


def curve_points(curve: Sequence[ev.CurvePoint]) -> list[dict[str, float]]:
    """A λ sweep as JSON-able points."""
    return [
        {"cost_weight": p.lam, "avg_cost": p.avg_cost, "avg_quality": p.avg_quality} for p in curve
    ]


def _policy(res: ev.PolicyResult, models: Sequence[str]) -> dict[str, Any]:
    return {
        "avg_quality": res.avg_quality,
        "avg_cost": res.avg_cost,
        "call_share": dict(zip(models, res.call_share, strict=True)),
    }


def curve_axes(
    curves: Sequence[tuple[list[dict[str, float]], str]],
    singles: dict[str, dict[str, float]],
    singles_color: str | None = None,
) -> tuple[Any, Any]:
    """A figure with cost–quality curves (points of :func:`curve_points`, and a label each)
    and the single models as labelled squares; finish it with :func:`save_plot`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    for curve, label in curves:
        costs = [p["avg_cost"] for p in curve]
        ax.plot(costs, [p["avg_quality"] for p in curve], "-o", ms=3, label=label)
    for name, p in singles.items():
        ax.scatter(p["avg_cost"], p["avg_quality"], marker="s", s=30, color=singles_color)
        ax.annotate(
            name,
            (p["avg_cost"], p["avg_quality"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    return fig, ax


def save_plot(fig: Any, ax: Any, path: Path, *, xlabel: str, title: str) -> Path:
    """Labels, grid and legend; the PNG written to ``path``."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel("average quality")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_telemetry(report: dict[str, Any], path: Path) -> Path:
    """A challenger trained on telemetry against the serving champion, on the held-out slice:
    both λ sweeps, both operating points, the single models (all estimated, see
    :mod:`converters.evaluation.off_policy`)."""
    ev = report["evaluation"]
    curves = [
        (
            [
                {"avg_cost": p["cost"], "avg_quality": p["quality"]}
                for p in ev["curves"][side]
                if np.isfinite(p["quality"])
            ],
            f"{side} (λ sweep)",
        )
        for side in ("challenger", "champion")
    ]
    fig, ax = curve_axes(curves, ev["single_models"])
    for side, marker in (("challenger", "D"), ("champion", "X")):
        ax.scatter(
            ev[side]["cost"], ev[side]["quality"], marker=marker, s=70, color="red", label=side
        )
    return save_plot(
        fig,
        ax,
        path,
        xlabel="average price (USD per 1M tokens)",
        title=f"{report['router']}: held-out {ev['rows']} requests, SNIPS quality estimates",
    )


def plot_curve(report: dict[str, Any], path: Path, title: str, cost_unit: str) -> Path:
    """The cost–quality curve of the λ sweep, the single models as points, the baselines."""
    fig, ax = curve_axes([(report["curve"], "router (λ sweep)")], report["single_models"])
    for key, marker in (("oracle", "*"), ("random", "x")):
        ax.scatter(
            report[key]["avg_cost"],
            report[key]["avg_quality"],
            marker=marker,
            s=80,
            label=key,
            color="black",
        )
    r = report["router"]
    ax.scatter(
        r["avg_cost"],
        r["avg_quality"],
        marker="D",
        s=60,
        color="red",
        label=f"router at default λ={report['cost_weight']:.3g}",
    )
    xlabel = f"average cost ({cost_unit.replace('_', ' ')})"
    return save_plot(fig, ax, path, xlabel=xlabel, title=title)
