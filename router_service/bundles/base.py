"""The router table the engine reads, and the seam that fills it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router_service.featurizers.base import Featurizer
from router_service.strategies.base import Strategy

__all__ = ["LoadedRouter", "RouterSource", "RouterTable"]


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


@dataclass(frozen=True, slots=True)
class RouterTable:
    """An immutable snapshot: hot reload swaps the whole table, never edits one in place."""

    routers: Mapping[str, LoadedRouter] = field(default_factory=dict)
    default: str = ""


class RouterSource(Protocol):
    """Builds the routers to serve; raises ConfigError (at start-up) when it cannot."""

    def load(self) -> list[LoadedRouter]: ...
