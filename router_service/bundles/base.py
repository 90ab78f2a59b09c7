"""The router table the engine reads, and the seam that fills it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router_service.bundles.rollout import in_share
from router_service.domain import RouteInput
from router_service.featurizers.base import Featurizer
from router_service.strategies.base import Strategy

__all__ = ["BundleInfo", "LoadedRouter", "RolloutPlan", "RouterSource", "RouterTable"]


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """What an operator wants to see about a served bundle (``ListRouters``): where it came
    from, its own version, who signed it, when it was trained and how it scored held out."""

    origin: str
    bundle_version: str
    signed_by: str = ""
    trained_at: str = ""
    held_out_quality: float | None = None
    held_out_cost: float | None = None


@dataclass(frozen=True, slots=True)
class LoadedRouter:
    """A router ready to serve. ``models`` are the candidate names a learned router can score
    (empty: any, e.g. static strategies and price-ladder routers); ``outputs`` is the width of
    its prediction row (0: no separate prediction step); ``aliases`` map other candidate names
    to ``models``; ``sha256`` identifies its artifacts
    (cache keys); ``featurizer_cost_ms`` is its featurizer's measured p99 per prompt, when the
    bundle recorded one (it sizes the router's time budget)."""

    name: str
    kind: str
    version: str
    strategy: Strategy
    featurizer: Featurizer | None = None
    models: tuple[str, ...] = ()
    outputs: int = 0
    aliases: Mapping[str, str] = field(default_factory=dict)
    sha256: str = ""
    featurizer_cost_ms: float | None = None
    info: BundleInfo | None = None


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """A challenger beside a router's champion: it answers the requests whose assignment key
    falls in ``share`` (canary), or decides for every request without answering (shadow)."""

    challenger: LoadedRouter
    shadow: bool = False
    share: float = 0.0
    assign_by: str = "request_id"
    description: str = ""

    def takes(self, router: str, req: RouteInput) -> bool:
        """Canary: whether ``req`` goes to the challenger. A request without its key (no
        request id, or no such label) stays with the champion."""
        if self.shadow:
            return False
        if self.assign_by == "request_id":
            key = req.request_id
        else:
            key = req.labels.get(self.assign_by, "")
        return bool(key) and in_share(router, key, self.share)


@dataclass(frozen=True, slots=True)
class RouterTable:
    """An immutable snapshot: hot reload swaps the whole table, never edits one in place."""

    routers: Mapping[str, LoadedRouter] = field(default_factory=dict)
    default: str = ""
    rollouts: Mapping[str, RolloutPlan] = field(default_factory=dict)


class RouterSource(Protocol):
    """Builds the routers to serve; raises ConfigError (at start-up) when it cannot."""

    def load(self) -> list[LoadedRouter]: ...
