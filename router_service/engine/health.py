"""Per-model health learned from outcome reports: a failed call benches a model for a while."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ModelHealth"]


class ModelHealth:
    """``health(model)`` is False for ``cooldown_s`` seconds after ``mark_failed(model)``."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown_s
        self._clock = clock
        self._failed_until: dict[str, float] = {}

    def mark_failed(self, model: str) -> None:
        self._failed_until[model] = self._clock() + self._cooldown

    def mark_ok(self, model: str) -> None:
        self._failed_until.pop(model, None)

    def __call__(self, model: str) -> bool:
        until = self._failed_until.get(model)
        if until is None:
            return True
        if self._clock() >= until:
            del self._failed_until[model]
            return True
        return False
