"""Offline evaluation of routing policies on a quality (and cost) table.

Inputs, for ``n`` evaluation queries and ``m`` models:

* ``S`` float ``[n, m]`` — predicted quality (a router's output; higher is better);
* ``Y`` float ``[n, m]`` — true quality in 0..1;
* ``cost`` float ``[m]`` (per model: USD per query, or a relative price such as the blended
  USD per 1M tokens) or ``[n, m]`` (measured USD per query). Average costs are in the same unit.

Policies: :func:`choose_utility` (argmax of ``S − λ·cost``; :func:`choose_utility_per_row`
with a λ per row) and :func:`choose_threshold`
(cheapest model predicted to reach quality ``q``). :func:`evaluate_choice` turns choices into
average quality, average cost and per-model call shares. Baselines: :func:`baselines` (best
single model by training mean, oracle, expected random pick). Two-model sets:
:func:`apgr`, exactly as RouteLLM computes it. Many models: :func:`cost_quality_curve` over a
λ sweep and :func:`frontier_gain`, the area of the router's curve above the single-model
frontier. :func:`bootstrap_interval` gives any of these statistics its sampling error over the
evaluation rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ApgrResult",
    "CurvePoint",
    "FrontierGain",
    "PolicyResult",
    "apgr",
    "baselines",
    "best_single_index",
    "bootstrap_interval",
    "choose_threshold",
    "choose_utility",
    "choose_utility_per_row",
    "cost_quality_curve",
    "default_lambdas",
    "evaluate_choice",
    "frontier_gain",
    "frontier_shortfalls",
    "lambda_for_budget",
    "random_apgr",
    "single_points",
    "sweep",
]

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Utilities within this of the row maximum are ties (float32 router outputs carry ~1e-7
#: rounding noise); ties go to the cheaper model.
TIE_TOL = 1e-6


@dataclass(frozen=True)
class PolicyResult:
    """Average quality and cost of a policy; ``call_share[j]`` is the share of queries sent to
    model ``j`` (sums to 1)."""

    avg_quality: float
    avg_cost: float
    call_share: tuple[float, ...]


@dataclass(frozen=True)
class CurvePoint:
    """One operating point of a λ sweep."""

    lam: float
    avg_cost: float
    avg_quality: float


@dataclass(frozen=True)
class ApgrResult:
    """RouteLLM's APGR with its parts; ``points`` are ``(strong_share, accuracy)`` pairs."""

    apgr: float
    auc: float
    weak_auc: float
    strong_auc: float
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FrontierGain:
    """Area between the router's and the single models' cost–quality frontiers."""

    area: float
    mean_gain: float
    cost_range: tuple[float, float]


def _as2d(x: npt.ArrayLike, name: str) -> F64:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, m], got shape {arr.shape}")
    return arr


def _cost_matrix(cost: npt.ArrayLike, shape: tuple[int, int]) -> F64:
    c = np.asarray(cost, dtype=np.float64)
    if c.shape not in ((shape[1],), shape):
        raise ValueError(f"cost must be [{shape[1]}] or {list(shape)}, got {c.shape}")
    return np.broadcast_to(c, shape)


def _argmax_cheapest(u: F64, c: F64) -> IntArray:
    """Row-wise argmax of ``u``; among entries within TIE_TOL of the max, the cheapest, then
    the lowest index."""
    near = u >= u.max(axis=1, keepdims=True) - TIE_TOL
    masked = np.where(near, c, np.inf)
    return np.asarray(masked.argmin(axis=1), dtype=np.int64)


def choose_utility(S: npt.ArrayLike, cost: npt.ArrayLike, lam: float) -> IntArray:
    """Choose ``argmax_j S[i, j] − lam · cost[j]`` per query (ties → cheaper, then lower
    index). ``lam`` is quality per unit of cost; ``lam = 0`` picks the best predicted model."""
    s = _as2d(S, "S")
    c = _cost_matrix(cost, s.shape)
    return _argmax_cheapest(s - lam * c, c)


def choose_utility_per_row(S: npt.ArrayLike, cost: npt.ArrayLike, lams: npt.ArrayLike) -> IntArray:
    """:func:`choose_utility` with each row's own λ (``lams [n]``): rows scored by routers
    calibrated apart, such as the folds of a cross-validation, each at its router's λ."""
    s = _as2d(S, "S")
    lam = np.asarray(lams, dtype=np.float64)
    if lam.shape != (len(s),):
        raise ValueError(f"lams must have shape ({len(s)},), got {lam.shape}")
    out = np.zeros(len(s), dtype=np.int64)
    for value in np.unique(lam):
        rows = lam == value
        out[rows] = choose_utility(s[rows], cost, float(value))
    return out


def choose_threshold(S: npt.ArrayLike, cost: npt.ArrayLike, q: float) -> IntArray:
    """Choose the cheapest model with ``S ≥ q``; when none reaches ``q``, the argmax of ``S``
    (ties → cheaper)."""
    s = _as2d(S, "S")
    c = _cost_matrix(cost, s.shape)
    ok = s >= q
    cheapest_ok = np.where(ok, c, np.inf).argmin(axis=1)
    fallback = _argmax_cheapest(s, c)
    return np.asarray(np.where(ok.any(axis=1), cheapest_ok, fallback), dtype=np.int64)


def evaluate_choice(choice: npt.ArrayLike, Y: npt.ArrayLike, cost: npt.ArrayLike) -> PolicyResult:
    """Average true quality and cost of sending query ``i`` to model ``choice[i]``."""
    y = _as2d(Y, "Y")
    c = _cost_matrix(cost, y.shape)
    ch = np.asarray(choice, dtype=np.int64)
    if ch.shape != (len(y),):
        raise ValueError(f"choice must have shape ({len(y)},), got {ch.shape}")
    rows = np.arange(len(y))
    share = np.bincount(ch, minlength=y.shape[1]) / max(len(y), 1)
    return PolicyResult(
        avg_quality=float(y[rows, ch].mean()),
        avg_cost=float(c[rows, ch].mean()),
        call_share=tuple(float(v) for v in share),
    )


def best_single_index(Y_train: npt.ArrayLike, cost: npt.ArrayLike | None = None) -> int:
    """The model with the highest mean training quality (ties → cheaper, then lower index)."""
    y = _as2d(Y_train, "Y_train")
    mean = y.mean(axis=0, keepdims=True)
    c = np.zeros(y.shape[1]) if cost is None else np.asarray(cost, dtype=np.float64)
    c = c.mean(axis=0) if c.ndim == 2 else c
    return int(_argmax_cheapest(mean, c.reshape(1, -1))[0])


def baselines(
    Y_train: npt.ArrayLike, Y_test: npt.ArrayLike, cost: npt.ArrayLike
) -> dict[str, PolicyResult]:
    """Reference policies on the test rows.

    * ``best_single``: always the model with the best mean training quality;
    * ``oracle``: per query the truly best model (ties → cheapest);
    * ``random``: the expectation of a uniformly random pick (mean over models).
    """
    y = _as2d(Y_test, "Y_test")
    c = _cost_matrix(cost, y.shape)
    per_model = np.asarray(cost, dtype=np.float64)
    per_model = per_model.mean(axis=0) if per_model.ndim == 2 else per_model
    best = best_single_index(Y_train, per_model)
    m = y.shape[1]
    return {
        "best_single": evaluate_choice(np.full(len(y), best), y, c),
        "oracle": evaluate_choice(_argmax_cheapest(y, c), y, c),
        "random": PolicyResult(
            avg_quality=float(y.mean()), avg_cost=float(c.mean()), call_share=(1.0 / m,) * m
        ),
    }


def apgr(
    scores: npt.ArrayLike, y_weak: npt.ArrayLike, y_strong: npt.ArrayLike, num_results: int = 10
) -> ApgrResult:
    """Average Performance Gap Recovered, exactly as RouteLLM's ``evaluate.py`` computes it.

    ``scores``: the router's preference for the strong model per query (e.g. predicted
    strong − weak quality). Thresholds are the ``num_results + 1`` quantiles of the scores
    (``pandas.qcut`` bins: linear interpolation, including min and max); at each threshold ``t``
    queries with ``score ≥ t`` go to the strong model (``> t`` for the last, the maximum), which
    gives the points (share of strong calls, accuracy). Sorted by share, ``AUC`` is the
    trapezoid area under accuracy over the share; ``weak_auc``/``strong_auc`` are the areas of
    the constant weak/strong accuracy over the same share range, and
    ``APGR = (AUC − weak_auc) / (strong_auc − weak_auc)``. A random router scores about 0.5;
    0 = weak-only quality, 1 = strong-only quality at every share.
    """
    s = np.asarray(scores, dtype=np.float64)
    yw = np.asarray(y_weak, dtype=np.float64)
    ys = np.asarray(y_strong, dtype=np.float64)
    if not (s.shape == yw.shape == ys.shape) or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"scores, y_weak, y_strong must be equal 1-D, got {s.shape}, {yw.shape}")
    thresholds = np.quantile(s, np.linspace(0.0, 1.0, num_results + 1))
    points = []
    for i, t in enumerate(thresholds):
        sel = s > t if i == len(thresholds) - 1 else s >= t
        points.append((float(sel.mean()), float(np.where(sel, ys, yw).mean())))
    points.sort(key=lambda p: p[0])
    share = np.array([p[0] for p in points])
    acc = np.array([p[1] for p in points])
    width = float(share[-1] - share[0])
    auc = float(np.trapezoid(acc, share))
    weak_auc, strong_auc = float(yw.mean()) * width, float(ys.mean()) * width
    gap = strong_auc - weak_auc
    value = (auc - weak_auc) / gap if gap != 0 else float("nan")
    return ApgrResult(value, auc, weak_auc, strong_auc, tuple(points))


def random_apgr(
    y_weak: npt.ArrayLike, y_strong: npt.ArrayLike, draws: int = 100, seed: int = 0
) -> float:
    """Mean APGR of routers with i.i.d. uniform random scores (``draws`` seeded draws)."""
    rng = np.random.default_rng(seed)
    n = len(np.asarray(y_weak))
    return float(np.mean([apgr(rng.random(n), y_weak, y_strong).apgr for _ in range(draws)]))


def default_lambdas(S: npt.ArrayLike, cost: npt.ArrayLike, n: int = 41) -> F64:
    """0 plus a geometric grid of ``n - 1`` values up to a λ at which cost outweighs every
    predicted quality difference (the top λ sends every query to the cheapest model)."""
    s = _as2d(S, "S")
    levels = np.unique(np.asarray(cost, dtype=np.float64))
    if len(levels) < 2:
        return np.zeros(1)
    min_gap = float(np.diff(levels).min())
    top = max(float(s.max() - s.min()), 1e-6) / min_gap * 2.0
    return np.concatenate([[0.0], np.geomspace(top * 1e-4, top, n - 1)])


def cost_quality_curve(
    S: npt.ArrayLike,
    Y: npt.ArrayLike,
    cost: npt.ArrayLike,
    lambdas: Sequence[float] | F64,
    policy_cost: npt.ArrayLike | None = None,
) -> list[CurvePoint]:
    """Operating points of :func:`choose_utility` for each λ (in the order given).
    ``policy_cost`` is what λ weighs when it is not ``cost`` itself (a tier router weighs
    price positions); the points report ``cost``."""
    weighed = cost if policy_cost is None else policy_cost
    out = []
    for lam in lambdas:
        res = evaluate_choice(choose_utility(S, weighed, float(lam)), Y, cost)
        out.append(CurvePoint(float(lam), res.avg_cost, res.avg_quality))
    return out


def lambda_for_budget(
    S: npt.ArrayLike,
    Y: npt.ArrayLike,
    cost: npt.ArrayLike,
    budget: float,
    lambdas: Sequence[float] | F64,
) -> CurvePoint | None:
    """The smallest λ of ``lambdas`` whose average cost is ≤ ``budget`` (None if none is).

    Fit λ on data other than the test rows when the result is to be reported as a test score.
    """
    for point in cost_quality_curve(S, Y, cost, sorted(lambdas)):
        if point.avg_cost <= budget + TIE_TOL:
            return point
    return None


def sweep(
    S: npt.ArrayLike,
    Y: npt.ArrayLike,
    cost: npt.ArrayLike,
    policy_cost: npt.ArrayLike | None = None,
) -> tuple[list[CurvePoint], FrontierGain]:
    """The cost–quality curve over :func:`default_lambdas` (``policy_cost``: what λ weighs, see
    :func:`cost_quality_curve`) and its :func:`frontier_gain` over the single models of ``Y``
    (``cost`` one per model)."""
    weighed = cost if policy_cost is None else policy_cost
    curve = cost_quality_curve(S, Y, cost, default_lambdas(S, weighed), weighed)
    return curve, frontier_gain(curve, single_points(Y, cost))


def single_points(Y: npt.ArrayLike, cost: npt.ArrayLike) -> list[tuple[float, float]]:
    """(avg cost, avg quality) of always using each single model of ``Y`` (``cost`` one per
    model): the points the single-model frontier is drawn through."""
    c = np.asarray(cost, dtype=np.float64)
    y = _as2d(Y, "Y")
    return [(float(c[j]), float(y[:, j].mean())) for j in range(y.shape[1])]


def _budget_frontier(points: Sequence[tuple[float, float]]) -> tuple[F64, F64]:
    """Vertices of the best quality reachable at expected cost ≤ c by randomly mixing the
    given (cost, quality) points: the upper concave hull, flat after its highest point."""
    best: dict[float, float] = {}
    for x, y in points:
        best[x] = max(y, best.get(x, -np.inf))
    pts = sorted(best.items())
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    xs = np.array([h[0] for h in hull])
    ys = np.maximum.accumulate(np.array([h[1] for h in hull]))
    return xs, ys


def frontier_gain(
    curve: Sequence[CurvePoint], singles: Sequence[tuple[float, float]], grid: int = 2001
) -> FrontierGain:
    """Area of the router's cost–quality frontier above the single-model frontier.

    ``singles`` are the (avg cost, avg quality) of always using each single model on the same
    rows. F(c) is the best expected quality reachable with expected cost ≤ c by randomly
    mixing single models (upper concave hull of ``singles``, non-decreasing); G(c) is the same
    with the router's operating points added. Over ``[c_lo, c_hi]`` (cheapest to most
    expensive single model), ``area = ∫ (G − F) dc`` (quality × cost units, ≥ 0) and
    ``mean_gain = area / (c_hi − c_lo)``: the average quality gained at a fixed budget.
    Below the cheapest router point G falls back to F.
    """
    if not singles:
        raise ValueError("need at least one single-model point")
    lo = min(c for c, _ in singles)
    hi = max(c for c, _ in singles)
    if hi <= lo:
        return FrontierGain(0.0, 0.0, (lo, hi))
    grid_c = np.linspace(lo, hi, grid)
    fx, fy = _budget_frontier(singles)
    gx, gy = _budget_frontier([*singles, *((p.avg_cost, p.avg_quality) for p in curve)])
    f = _frontier_at(fx, fy, grid_c)
    g = np.maximum(_frontier_at(gx, gy, grid_c), f)
    area = float(np.trapezoid(g - f, grid_c))
    return FrontierGain(area, area / (hi - lo), (lo, hi))


def frontier_shortfalls(
    curve: Sequence[CurvePoint], singles: Sequence[tuple[float, float]]
) -> list[tuple[CurvePoint, float]]:
    """The operating points that lie below the single-model frontier F (see
    :func:`frontier_gain`: the best quality reachable at that average cost by randomly mixing
    single models), each with F at its cost: ``(point, F(point.avg_cost))``. A point that is a
    single model (the router sends everything to one) lies on F, never below it."""
    fx, fy = _budget_frontier(singles)
    out = []
    for point in curve:
        (reachable,) = _frontier_at(fx, fy, np.array([point.avg_cost]))
        if point.avg_quality < reachable - TIE_TOL:
            out.append((point, float(reachable)))
    return out


def _frontier_at(xs: F64, ys: F64, c: F64) -> F64:
    """Frontier value at costs ``c``; −inf below its cheapest point, flat after its last."""
    out = np.interp(c, xs, ys)
    return np.asarray(np.where(c < xs[0] - TIE_TOL, -np.inf, out), dtype=np.float64)


def bootstrap_interval(
    statistic: Callable[[IntArray], float],
    n: int,
    *,
    level: float = 0.9,
    draws: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile bootstrap interval of ``statistic(rows)`` over ``n`` evaluation rows:
    ``draws`` seeded resamples of the row indices with replacement, and the central ``level``
    share of the values they give. ``statistic`` receives the resampled indices; evaluate every
    policy of a comparison on the same indices (a paired difference is far narrower than the
    two intervals side by side)."""
    if n <= 0 or not 0.0 < level < 1.0 or draws < 1:
        raise ValueError(f"need n > 0, 0 < level < 1 and draws ≥ 1; got {n}, {level}, {draws}")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(draws)])
    tail = (1.0 - level) / 2.0
    low, high = np.nanquantile(values, [tail, 1.0 - tail])
    return float(low), float(high)
