"""Budgets held on live traffic: a target instead of a raw λ.

A learned router's policy answers ``argmax_j quality_j − λ·cost_j``; a larger λ buys cheaper
models. An operator states what they want over recent traffic instead — at most 20 % of
decisions to the expensive model (``max_share``), at most $2 per 1,000 requests
(``max_cost_per_1k_requests``), or at least 95 % of the best candidate's predicted quality on
average (``min_quality``) — per router and tenant, and a :class:`BudgetController` finds the λ.

How: every decision of the router (learned or cached) leaves its candidates' predicted quality
and cost in the controller's window of the last ``window`` decisions. Every ``update_every``
decisions the controller replays the policy over the whole window at trial values of λ and
bisects for the λ at which the target is just met (each of the three quantities only falls as λ
grows): the smallest λ that keeps share or cost under its cap, the largest that keeps quality
over its floor, within ``[lambda_min, lambda_max]``. This is a rolling quantile of the margin
between candidates: no gains to tune, no overshoot, and it follows a shift in the traffic mix
within one window.

Learned routers' predictions are lumpy (a KNN averages a few neighbours' 0/1 grades), so many
requests share one margin and the quantity jumps at that λ — from 45 % to 15 % of the traffic,
say, with 20 % wanted. The controller then mixes the two sides of the jump: it answers a
fraction ``mix`` of requests (spread evenly, by error diffusion, not at random) at the λ just
below the jump and the rest at the λ just above, with ``mix`` set so that the replayed quantity
equals the target. With fewer than ``min_samples`` decisions in the window λ is not touched
(the router's own λ applies until then), and without traffic it stays where it was.

The λ in force replaces the request's own ``cost_weight`` (a budget is a cap the caller cannot
lift: a prompt crafted to pull the router toward expensive models cannot spend past it); the
answer's ``reason`` names it, and ``routeiq_budget_lambda`` / ``routeiq_budget_value`` show it
and the quantity it holds.
"""

from __future__ import annotations

import math

import numpy as np

from router_service.config import BudgetSettings
from router_service.domain import Decision, RouteInput
from router_service.strategies.learned import TIE

__all__ = ["BudgetController"]

_BISECTIONS = 40


class BudgetController:
    """One budget for one (router, tenant): the window, and the λ in force (``None`` until
    the window first holds ``min_samples`` decisions)."""

    def __init__(self, spec: BudgetSettings, max_candidates: int, columns: int = 4) -> None:
        self.spec = spec
        self.lam: float | None = None
        """The λ on the target's side of the jump (``None`` until the window first fills)."""
        self.alt = 0.0
        """The λ on the other side of the jump, for a share ``mix`` of requests."""
        self.mix = 0.0
        self._owed = 0.0
        self.value: float | None = None
        """The held quantity over the window at :attr:`lam` (share, USD per 1k, or quality)."""
        self._max_columns = max_candidates
        self._quality = np.full((spec.window, columns), -np.inf)
        self._cost = np.zeros((spec.window, columns))
        self._counts = np.zeros((spec.window, columns), dtype=bool)  # candidates max_share counts
        self._usd = np.zeros((spec.window, columns))  # USD per 1,000 requests, were it chosen
        self._models = frozenset(spec.models)
        self._rows = 0  # rows filled (up to the window)
        self._next = 0  # the ring's next row
        self._seen = 0
        if spec.max_share is not None:
            self.target, self._cap = spec.max_share, True
        elif spec.max_cost_per_1k_requests is not None:
            self.target, self._cap = spec.max_cost_per_1k_requests, True
        else:
            assert spec.min_quality is not None
            self.target, self._cap = spec.min_quality, False

    def describe(self) -> str:
        spec = self.spec
        if spec.max_share is not None:
            return f"max_share {spec.max_share:g} of {','.join(spec.models)}"
        if spec.max_cost_per_1k_requests is not None:
            return f"max_cost_per_1k_requests {spec.max_cost_per_1k_requests:g}"
        return f"min_quality {spec.min_quality:g}"

    def observe(self, req: RouteInput, decision: Decision) -> None:
        """Add a decision's candidates to the window; every ``update_every``, solve for λ."""
        scores = decision.scores
        if len(scores) > self._quality.shape[1]:
            if len(scores) > self._max_columns:
                return
            self._widen(min(max(len(scores), 2 * self._quality.shape[1]), self._max_columns))
        row = self._next
        self._quality[row] = -np.inf
        self._cost[row] = 0.0
        self._counts[row] = False
        self._usd[row] = 0.0
        scale = self.spec.tokens_per_request / 1e6 * 1000
        usable = 0
        for j, (score, cand) in enumerate(zip(scores, req.candidates, strict=False)):
            if score.quality is None or score.cost is None or not math.isfinite(score.quality):
                continue
            usable += 1
            self._quality[row, j] = score.quality
            self._cost[row, j] = score.cost
            self._counts[row, j] = score.model in self._models
            self._usd[row, j] = (cand.price or 0.0) * scale
        if usable == 0:
            return
        self._next = (row + 1) % len(self._quality)
        self._rows = min(self._rows + 1, len(self._quality))
        self._seen += 1
        if self._seen % self.spec.update_every == 0 and self._rows >= self.spec.min_samples:
            self.lam, self.alt = self._solve()
            self.value = self.measure(self.lam)
            other = self.measure(self.alt)
            gap = other - self.value
            self.mix = min(max((self.target - self.value) / gap, 0.0), 1.0) if gap else 0.0

    def next_lambda(self) -> float | None:
        """The λ for the next request: :attr:`alt` for a share :attr:`mix` of requests,
        spread evenly; else :attr:`lam`."""
        if self.lam is None or not self.mix:
            return self.lam
        self._owed += self.mix
        if self._owed >= 1.0:
            self._owed -= 1.0
            return self.alt
        return self.lam

    def _widen(self, columns: int) -> None:
        """Room for more candidates per decision (the window starts narrow: a controller per
        tenant must stay small)."""
        extra = columns - self._quality.shape[1]
        rows = len(self._quality)
        self._quality = np.hstack([self._quality, np.full((rows, extra), -np.inf)])
        self._cost = np.hstack([self._cost, np.zeros((rows, extra))])
        self._counts = np.hstack([self._counts, np.zeros((rows, extra), dtype=bool)])
        self._usd = np.hstack([self._usd, np.zeros((rows, extra))])

    def measure(self, lam: float) -> float:
        """The held quantity over the window, were the policy run at ``lam``."""
        n = self._rows
        quality, cost = self._quality[:n], self._cost[:n]
        # the policy's own rule: the best score, near-ties going to the cheapest
        score = quality - lam * cost
        near = score >= score.max(axis=1, keepdims=True) - TIE
        chosen = np.argmin(np.where(near, cost, np.inf), axis=1)[:, None]
        if self.spec.max_share is not None:
            return float(np.take_along_axis(self._counts[:n], chosen, axis=1).mean())
        if self.spec.max_cost_per_1k_requests is not None:
            return float(np.take_along_axis(self._usd[:n], chosen, axis=1).mean())
        best = quality.max(axis=1)
        got = np.take_along_axis(quality, chosen, axis=1)[:, 0]
        ratio = np.where(best > 0, got / np.where(best > 0, best, 1.0), 1.0)
        return float(ratio.mean())

    def _met(self, lam: float) -> bool:
        value = self.measure(lam)
        return value <= self.target if self._cap else value >= self.target

    def _solve(self) -> tuple[float, float]:
        """The λ at the jump where the target is first met — the smallest meeting a cap
        (share, cost), the largest meeting a floor (quality) — and the λ just across it; the
        bound (twice) when none or every λ in range meets it."""
        lo, hi = self.spec.lambda_min, self.spec.lambda_max
        if self._cap:
            if self._met(lo):
                return lo, lo
            if not self._met(hi):
                return hi, hi
        else:
            if not self._met(lo):
                return lo, lo
            if self._met(hi):
                return hi, hi
        for _ in range(_BISECTIONS):
            mid = (lo + hi) / 2
            if self._met(mid) == self._cap:
                hi = mid  # a cap met at mid: a smaller λ may do too
            else:
                lo = mid
        return (hi, lo) if self._cap else (lo, hi)
