"""Strategy kinds by name: the built-ins, the ``routeiq.strategies`` entry point group, and
dotted paths named in the config (``strategies: {my-kind: "my_pkg.module:MyStrategy"}``).

A strategy factory is called with the router's ``params`` as keyword arguments and returns a
:class:`~router_service.strategies.base.Strategy`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from router_service.errors import ConfigError
from router_service.strategies.base import Strategy
from router_service.strategies.static import Cheapest, Fallback, Fixed, RoundRobin, Weighted

__all__ = ["ENTRY_POINT_GROUP", "StrategyFactory", "StrategyRegistry"]

ENTRY_POINT_GROUP = "routeiq.strategies"
StrategyFactory = Callable[..., Strategy]

_BUILTIN: dict[str, StrategyFactory] = {
    "round-robin": RoundRobin,
    "weighted": Weighted,
    "fallback": Fallback,
    "cheapest": Cheapest,
    "fixed": Fixed,
}


def _load_dotted(path: str) -> StrategyFactory:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"strategy path {path!r} must look like 'package.module:Class'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load strategy {path!r}: {exc}") from None
    if not callable(factory):
        raise ConfigError(f"strategy {path!r} is not callable")
    return factory  # type: ignore[no-any-return]


class StrategyRegistry:
    """Maps a strategy kind to its factory. Later sources override earlier ones by name:
    built-ins, then entry points, then the config's dotted paths."""

    def __init__(self, custom: Mapping[str, str] | None = None, *, entry_points_: bool = True):
        self._factories: dict[str, StrategyFactory] = dict(_BUILTIN)
        if entry_points_:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._factories[ep.name] = _load_dotted(ep.value)
        for kind, path in (custom or {}).items():
            self._factories[kind] = _load_dotted(path)

    def register(self, kind: str, factory: StrategyFactory) -> None:
        self._factories[kind] = factory

    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def create(self, kind: str, params: Mapping[str, Any]) -> Strategy:
        """Build a strategy; :class:`ConfigError` for an unknown kind or bad params."""
        factory = self._factories.get(kind)
        if factory is None:
            raise ConfigError(f"unknown strategy {kind!r}; known: {', '.join(self.kinds())}")
        try:
            strategy = factory(**params)
        except TypeError as exc:
            raise ConfigError(f"strategy {kind!r}: bad params: {exc}") from None
        if not isinstance(strategy, Strategy):
            raise ConfigError(
                f"strategy {kind!r} does not implement choose()/kind/needs_features/blocking"
            )
        return strategy
