"""The cache seam: decisions and features, looked up by key, stored without blocking."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from router_service.engine.types import Decision

__all__ = ["DecisionCache", "FeatureCache", "NoCache"]


class DecisionCache(Protocol):
    """``get`` never raises (a failing cache is a miss) and honours its own timeout;
    ``put`` returns at once (the write happens off the answer's critical path) with the
    decision as kept (carrying its encoding when the cache encoded it)."""

    async def get_decision(self, key: str) -> Decision | None: ...

    def put_decision(self, key: str, decision: Decision) -> Decision: ...


class FeatureCache(Protocol):
    async def get_features(self, key: str) -> npt.NDArray[np.float32] | None: ...

    def put_features(self, key: str, features: npt.NDArray[np.float32]) -> None: ...


class NoCache:
    """Caches nothing: every lookup is a miss."""

    async def get_decision(self, key: str) -> Decision | None:
        return None

    def put_decision(self, key: str, decision: Decision) -> Decision:
        return decision

    async def get_features(self, key: str) -> npt.NDArray[np.float32] | None:
        return None

    def put_features(self, key: str, features: npt.NDArray[np.float32]) -> None:
        return None
