"""Routers built from the config's static strategies (and custom strategy kinds)."""

from __future__ import annotations

from collections.abc import Sequence

from router_service.bundles.base import LoadedRouter
from router_service.config import RouterSpec
from router_service.strategies.registry import StrategyRegistry

__all__ = ["StaticSource"]


class StaticSource:
    """One :class:`LoadedRouter` per config entry; version ``static``."""

    def __init__(self, specs: Sequence[RouterSpec], registry: StrategyRegistry) -> None:
        self._specs = list(specs)
        self._registry = registry

    def load(self) -> list[LoadedRouter]:
        return [
            LoadedRouter(
                name=spec.name,
                kind=spec.strategy,
                version="static",
                strategy=self._registry.create(spec.strategy, spec.params),
            )
            for spec in self._specs
        ]
