"""Judging a routing policy on logged feedback (the service's own telemetry), where only the
answering model's quality is known.

Estimator: self-normalised inverse-propensity scoring (SNIPS). A policy's quality is the mean
outcome quality over the logged rows where the policy would have chosen the model that
answered, each weighted by 1 / the probability the logging router had of choosing that model:

    V̂(π) = Σ_i 1[π(x_i) = a_i] q_i / p_i  /  Σ_i 1[π(x_i) = a_i] / p_i

It is unbiased up to the normalisation when every model a policy may choose had a non-zero
chance of being logged (the service's ``exploration``); rows of a deterministic router
(p = 1) only inform about the model it chose. Cost needs no estimator: a candidate's price is
known whether or not it answered, so a policy's cost is its mean price over all rows.
Uncertainty: a Poisson bootstrap over rows (paired, for differences between two policies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from converters.datasets.telemetry import LoggedFeedback
from converters.evaluation.policies import TIE_TOL, default_lambdas

__all__ = ["PolicyValue", "choices", "choose", "compare", "curve", "logged_greedy", "value"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOTSTRAP = 1000


def choose(S: F64, fb: LoggedFeedback, lam: float) -> I64:
    """Per row, the offered model maximising ``S − λ·price`` (NaN scores never chosen; ties
    within TIE_TOL → the cheaper). ``S`` has one column per ``fb.models``."""
    price = np.where(fb.offered, fb.price, np.inf)
    ok = fb.offered & np.isfinite(S)
    u = np.where(ok, np.nan_to_num(S) - lam * np.where(ok, price, 0.0), -np.inf)
    top = u.max(axis=1, keepdims=True)
    near = ok & (u >= top - TIE_TOL)
    return np.asarray(np.where(near, price, np.inf).argmin(axis=1), dtype=np.int64)


def logged_greedy(fb: LoggedFeedback) -> I64:
    """What the logging router itself would have chosen without exploring: its best logged
    score (the λ it used then included), ties → cheaper."""
    return choose(fb.logged_score, fb, 0.0)


@dataclass(frozen=True)
class PolicyValue:
    quality: float
    """SNIPS estimate of the mean quality (NaN when the policy never agrees with the log)."""
    cost: float
    """Mean price of its choices (USD per 1M tokens)."""
    matched: int
    """Logged rows where it chose the model that answered (the estimate's evidence)."""
    se: float
    """Bootstrap standard error of ``quality``."""

    def as_dict(self) -> dict[str, float]:
        return {
            "quality": round(self.quality, 6),
            "quality_se": round(self.se, 6),
            "cost": round(self.cost, 6),
            "matched_rows": self.matched,
        }


def _weights(choice: I64, fb: LoggedFeedback) -> F64:
    return np.asarray((choice == fb.action) / fb.propensity, dtype=np.float64)


def _boot(n: int, seed: int) -> F64:
    return np.random.default_rng(seed).poisson(1.0, size=(BOOTSTRAP, n)).astype(np.float64)


def _snips(w: F64, q: F64, boot: F64 | None = None) -> tuple[float, F64 | None]:
    total = float(w.sum())
    point = float((w * q).sum() / total) if total > 0 else float("nan")
    if boot is None:
        return point, None
    num, den = boot @ (w * q), boot @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        return point, np.where(den > 0, num / den, np.nan)


def value(choice: I64, fb: LoggedFeedback, seed: int = 0) -> PolicyValue:
    """The policy that chose ``choice`` (model indices), judged on ``fb``."""
    w = _weights(choice, fb)
    point, reps = _snips(w, fb.quality, _boot(fb.n, seed))
    assert reps is not None
    cost = float(fb.price[np.arange(fb.n), choice].mean())
    se = float(np.nanstd(reps)) if np.isfinite(reps).any() else float("nan")
    return PolicyValue(point, cost, int((choice == fb.action).sum()), se)


def compare(challenger: I64, champion: I64, fb: LoggedFeedback, seed: int = 0) -> dict[str, float]:
    """Quality difference challenger − champion with its paired bootstrap standard error and
    one-sided 95 % lower bound, and the cost ratio challenger / champion."""
    boot = _boot(fb.n, seed)
    a, ra = _snips(_weights(challenger, fb), fb.quality, boot)
    b, rb = _snips(_weights(champion, fb), fb.quality, boot)
    assert ra is not None and rb is not None
    diffs = ra - rb
    se = float(np.nanstd(diffs)) if np.isfinite(diffs).any() else float("nan")
    rows = np.arange(fb.n)
    cost_a = float(fb.price[rows, challenger].mean())
    cost_b = float(fb.price[rows, champion].mean())
    return {
        "quality_gain": round(a - b, 6),
        "quality_gain_se": round(se, 6),
        "quality_gain_lower95": round(a - b - 1.645 * se, 6),
        "cost_ratio": round(cost_a / cost_b, 6) if cost_b > 0 else float("nan"),
    }


def choices(S: F64, fb: LoggedFeedback) -> Iterator[tuple[float, I64]]:
    """The policy's choices at each λ of a sweep (:func:`default_lambdas` over the offered
    prices), in increasing λ."""
    for lam in default_lambdas(np.where(np.isfinite(S), S, 0.0), fb.price[fb.offered]):
        yield float(lam), choose(S, fb, float(lam))


def curve(S: F64, fb: LoggedFeedback, seed: int = 0) -> list[dict[str, float]]:
    """The policy's operating points over a λ sweep: λ, estimated quality, cost, evidence."""
    return [{"cost_weight": lam} | value(c, fb, seed).as_dict() for lam, c in choices(S, fb)]
