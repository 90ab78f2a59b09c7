"""The cache seam: arrays looked up by key, stored without blocking."""

from __future__ import annotations

from typing import Protocol

from router_service.cache.codec import Array, ArrayCodec

__all__ = ["ArrayCache", "NoCache"]


class ArrayCache(Protocol):
    """``get`` never raises (a failing tier is a miss) and honours its own timeouts; ``put``
    returns at once (shared-tier writes happen off the answer's critical path). ``codec``
    says how a value of its kind is stored; values come back read-only."""

    async def get(self, key: str, codec: ArrayCodec) -> Array | None: ...

    def put(self, key: str, value: Array, codec: ArrayCodec) -> None: ...


class NoCache:
    """Caches nothing: every lookup is a miss."""

    async def get(self, key: str, codec: ArrayCodec) -> Array | None:
        return None

    def put(self, key: str, value: Array, codec: ArrayCodec) -> None:
        return None
