"""Per-model health learned from outcome reports: a failed call benches a model for a while,
within the reporter's tenant scope only.

The rule, in full:

- A report with ``failed: true`` benches its model for ``cooldown_s`` seconds for requests of
  the same scope: the report's ``tenant`` label (``""`` without one). Requests of another
  tenant do not see it, so one tenant cannot steer another's routing. Once authentication
  lands, the scope is the authenticated tenant instead of a label.
- A report with ``failed: false`` does not lift a bench early: a bench always lasts its
  cooldown (a later failure restarts it).
- At most ``max_entries`` benches are kept across all scopes; past that the ones closest to
  expiry are dropped first. Expired benches are swept as new ones arrive and when looked up.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from router_service.strategies.base import HealthCheck

__all__ = ["ModelHealth"]


def _all_healthy(model: str) -> bool:
    return True


class ModelHealth:
    """Benches keyed by (scope, model), in order of expiry (the cooldown is fixed)."""

    def __init__(
        self,
        cooldown_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cooldown = cooldown_s
        self._max = max_entries
        self._clock = clock
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def mark_failed(self, scope: str, model: str) -> None:
        now = self._clock()
        self._sweep(now)
        if self._cooldown <= 0 or self._max == 0:
            return
        self._until.pop((scope, model), None)
        self._until[(scope, model)] = now + self._cooldown
        while len(self._until) > self._max:
            self._until.popitem(last=False)

    def healthy(self, scope: str, model: str) -> bool:
        until = self._until.get((scope, model))
        if until is None:
            return True
        if self._clock() >= until:
            del self._until[(scope, model)]
            return True
        return False

    def view(self, scope: str) -> HealthCheck:
        """The health check a strategy gets for a request of ``scope``."""
        if not self._until:
            return _all_healthy
        return lambda model: self.healthy(scope, model)

    def _sweep(self, now: float) -> None:
        while self._until:
            key, until = next(iter(self._until.items()))
            if until > now:
                return
            del self._until[key]
