"""Custom strategies used by tests, loaded through the config's dotted paths."""

from __future__ import annotations

import time

from router_service.domain import Choice, RouteInput
from router_service.strategies.base import Features, HealthCheck, onehot_scores


class AlwaysLast:
    kind = "always-last"
    needs_features = False
    blocking = False

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        name = request.candidates[-1].name
        return Choice(name, onehot_scores(request.candidates, name), "last candidate")


class Slow:
    """Blocks for ``delay_s`` (run in the engine's thread pool), then picks the first."""

    kind = "slow"
    needs_features = False
    blocking = True

    def __init__(self, delay_s: float = 0.2) -> None:
        self.delay_s = delay_s

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        time.sleep(self.delay_s)
        name = request.candidates[0].name
        return Choice(name, onehot_scores(request.candidates, name), f"slept {self.delay_s}s")


class Broken:
    kind = "broken"
    needs_features = False
    blocking = False

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        raise RuntimeError("boom with secret detail")


class OffList:
    kind = "off-list"
    needs_features = False
    blocking = False

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        return Choice("not-a-candidate", (), "made up")


class SlowToLoad:
    """Takes ``load_s`` seconds to build (like a strategy that loads a model), then picks the
    first candidate."""

    kind = "slow-to-load"
    needs_features = False
    blocking = False

    def __init__(self, load_s: float = 2.0) -> None:
        time.sleep(load_s)

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        name = request.candidates[0].name
        return Choice(name, onehot_scores(request.candidates, name), "first")
