"""Static strategies: they need no features and no model.

Each is configured by its router's ``params`` (validated at start-up, :class:`ConfigError`
on bad params). All skip candidates marked unavailable or recently failed, unless none is left.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Mapping
from typing import Any

from router_service.domain import CandidateScore, Choice, RouteInput
from router_service.errors import ConfigError
from router_service.strategies.base import Features, HealthCheck, onehot_scores, usable

__all__ = ["Cheapest", "Fallback", "Fixed", "RoundRobin", "Weighted"]


def _number_map(kind: str, key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{kind}: '{key}' must be a mapping of model name to number")
    out: dict[str, float] = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ConfigError(f"{kind}: '{key}.{name}' must be a number, got {number!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{kind}: '{key}.{name}' must be finite")
        out[str(name)] = float(number)
    return out


def _note(all_ok: bool) -> str:
    return "" if all_ok else " (no healthy candidate; ignoring health)"


class RoundRobin:
    """Each call takes the next usable candidate (a per-router counter)."""

    kind = "round-robin"
    needs_features = False
    blocking = False

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        pool, ok = usable(request.candidates, health)
        chosen = pool[next(self._counter) % len(pool)].name
        return Choice(chosen, onehot_scores(request.candidates, chosen), "round-robin" + _note(ok))


class Weighted:
    """Random pick in proportion to ``weights`` (model → weight ≥ 0; others get ``default``).

    With a ``request_id`` the draw is a hash of it, so a retried request lands on the same model.
    """

    kind = "weighted"
    needs_features = False
    blocking = False

    def __init__(self, weights: Mapping[str, float] | None = None, default: float = 1.0) -> None:
        self._weights = _number_map(self.kind, "weights", weights or {})
        if any(w < 0 for w in self._weights.values()) or default < 0:
            raise ConfigError("weighted: weights must be >= 0")
        self._default = float(default)
        self._rng = random.Random()  # noqa: S311 - traffic splitting, not security

    def _draw(self, request_id: str) -> float:
        if not request_id:
            return self._rng.random()
        digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        pool, ok = usable(request.candidates, health)
        weights = [self._weights.get(c.name, self._default) for c in pool]
        total = sum(weights)
        if total <= 0:
            weights, total = [1.0] * len(pool), float(len(pool))
        point, acc, chosen = self._draw(request.request_id) * total, 0.0, pool[-1].name
        for cand, weight in zip(pool, weights, strict=True):
            acc += weight
            if point < acc:
                chosen = cand.name
                break
        share = {c.name: w / total for c, w in zip(pool, weights, strict=True)}
        scores = tuple(
            CandidateScore(model=c.name, score=share.get(c.name, 0.0), cost=c.price)
            for c in request.candidates
        )
        return Choice(chosen, scores, "weighted draw" + _note(ok))


class Fallback:
    """The first usable candidate in ``order`` (then the rest in request order)."""

    kind = "fallback"
    needs_features = False
    blocking = False

    def __init__(self, order: list[str] | None = None) -> None:
        if order is not None and not all(isinstance(n, str) for n in order):
            raise ConfigError("fallback: 'order' must be a list of model names")
        self._rank = {name: i for i, name in enumerate(order or [])}

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        ranked = sorted(
            enumerate(request.candidates),
            key=lambda ic: (self._rank.get(ic[1].name, len(self._rank)), ic[0]),
        )
        pool, ok = usable([c for _, c in ranked], health)
        chosen = pool[0].name
        skipped = ranked[0][1].name != chosen
        reason = "first healthy in order" + (" (skipped unhealthy)" if skipped else "")
        return Choice(chosen, onehot_scores(request.candidates, chosen), reason + _note(ok))


class Cheapest:
    """The usable candidate with the lowest mean price; unknown prices rank last."""

    kind = "cheapest"
    needs_features = False
    blocking = False

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        pool, ok = usable(request.candidates, health)
        priced = [c for c in pool if c.price is not None]
        if priced:
            chosen = min(priced, key=lambda c: c.price if c.price is not None else math.inf).name
            reason = "lowest price"
        else:
            chosen, reason = pool[0].name, "no prices given; first candidate"
        scores = tuple(
            CandidateScore(
                model=c.name, score=-c.price if c.price is not None else -math.inf, cost=c.price
            )
            for c in request.candidates
        )
        return Choice(chosen, scores, reason + _note(ok))


class Fixed:
    """The usable candidate with the highest fixed score (e.g. an Elo rating).

    ``ranking`` is model → score; models not in it get ``default`` (lowest by default).
    """

    kind = "fixed"
    needs_features = False
    blocking = False

    def __init__(self, ranking: Mapping[str, float] | None = None, default: float = -1e9) -> None:
        self._ranking = _number_map(self.kind, "ranking", ranking or {})
        self._default = float(default)

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        pool, ok = usable(request.candidates, health)
        chosen = max(pool, key=lambda c: self._ranking.get(c.name, self._default)).name
        scores = tuple(
            CandidateScore(
                model=c.name, score=self._ranking.get(c.name, self._default), cost=c.price
            )
            for c in request.candidates
        )
        return Choice(chosen, scores, "highest fixed rank" + _note(ok))
