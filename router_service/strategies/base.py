"""The strategy seam: a small protocol every strategy implements, and shared helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from router_service.domain import Candidate, CandidateScore, Choice, RouteInput

__all__ = ["Features", "HealthCheck", "ScoredStrategy", "Strategy", "onehot_scores", "usable"]

Features = npt.NDArray[np.float32]
HealthCheck = Callable[[str], bool]
"""``health(model) -> True`` when no recent failure was reported for the model."""


@runtime_checkable
class Strategy(Protocol):
    """Chooses one of ``request.candidates``.

    ``choose`` is synchronous. It runs on the event loop unless the strategy declares
    ``blocking = True`` (it does I/O or heavy CPU work): then it runs in the engine's bounded
    thread pool under ``engine.offload_timeout_ms``. Any exception, or the timeout,
    makes the engine answer from the fallback strategy; the message of a
    :class:`~router_service.errors.StrategyError` goes into the answer's ``reason`` (so it must
    never contain prompt text), other exceptions show only their class name. ``features`` is
    ``None`` unless ``needs_features`` is true.
    """

    kind: str
    needs_features: bool
    blocking: bool

    def choose(
        self, request: RouteInput, features: Features | None, health: HealthCheck
    ) -> Choice: ...


@runtime_checkable
class ScoredStrategy(Strategy, Protocol):
    """A learned strategy split in two: ``predict_batch`` (its outputs for feature rows
    ``[n, d]``: quality per known model, or per price rung; thread-safe, run off the event loop
    and batched across requests) and
    ``choose_scored`` (the policy on one request's predicted quality, cheap, on the loop)."""

    def predict_batch(self, features: Features) -> npt.NDArray[np.float64]: ...

    def choose_scored(
        self, request: RouteInput, quality: npt.NDArray[np.float64], health: HealthCheck
    ) -> Choice: ...


def usable(candidates: Sequence[Candidate], health: HealthCheck) -> tuple[list[Candidate], bool]:
    """Candidates neither marked unavailable nor recently failed, and whether any were.

    When none is usable all candidates are returned (a degraded answer beats none) with
    ``False``.
    """
    ok = [c for c in candidates if not c.unavailable and health(c.name)]
    return (ok, True) if ok else (list(candidates), False)


def onehot_scores(candidates: Sequence[Candidate], chosen: str) -> tuple[CandidateScore, ...]:
    return tuple(
        CandidateScore(model=c.name, score=1.0 if c.name == chosen else 0.0, cost=c.price)
        for c in candidates
    )
