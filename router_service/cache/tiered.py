"""Two tiers behind one interface: the in-process LRU in front of Redis (optional).

Reads: LRU, then Redis (a Redis hit is decoded once and kept decoded in the LRU). Writes: the
LRU at once, Redis in a background task, so a write never adds latency to the answer; at most
``max_pending_writes`` Redis writes are in flight, extra ones are dropped and counted. Values
that fail to decode read as misses. Keys are hashes (see :mod:`router_service.cache.keys`);
prompts are never stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from router_service.cache.codec import Array, ArrayCodec
from router_service.cache.lru import LruCache
from router_service.cache.redis_tier import RedisTier
from router_service.metrics import Metrics

__all__ = ["TieredCache"]

log = logging.getLogger(__name__)


class TieredCache:
    """Implements :class:`~router_service.cache.base.ArrayCache`. ``ttl_s`` maps each
    codec's ``kind`` to the lifetime of its entries in both tiers."""

    def __init__(
        self,
        lru: LruCache[Array],
        redis: RedisTier | None,
        metrics: Metrics,
        *,
        ttl_s: Mapping[str, float],
        max_pending_writes: int = 1000,
    ) -> None:
        self.lru = lru
        self.redis = redis
        self._metrics = metrics
        self._ttl = dict(ttl_s)
        self._max_pending = max_pending_writes
        self._pending: set[asyncio.Task[None]] = set()
        self._stores = lru.enabled or redis is not None
        """Whether any tier keeps what is put (else there is nothing to encode for)."""

    async def get(self, key: str, codec: ArrayCodec) -> Array | None:
        count, kind = self._metrics.count_cache, codec.kind
        value = self.lru.get(key)
        if value is not None:
            count("lru", kind, "hit")
            return value
        count("lru", kind, "miss")
        if self.redis is None:
            return None
        result, raw = await self.redis.get(key)
        count("redis", kind, result)
        if raw is None:
            return None
        try:
            decoded = codec.decode(raw)
        except ValueError:
            count("any", kind, "corrupt")
            log.warning("dropping an undecodable %s cache entry %s", kind, key[:24])
            return None
        self.lru.put(key, decoded, len(raw), self._ttl[kind])
        return decoded

    def put(self, key: str, value: Array, codec: ArrayCodec) -> None:
        if not self._stores:
            return
        raw = codec.encode(value)
        ttl = self._ttl[codec.kind]
        self.lru.put(key, codec.decode(raw), len(raw), ttl)  # a read-only copy nobody else holds
        if self.redis is None:
            return
        if len(self._pending) >= self._max_pending:
            self._metrics.cache_writes.labels("dropped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._write(key, raw, ttl))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, key: str, raw: bytes, ttl: float) -> None:
        assert self.redis is not None
        self._metrics.cache_writes.labels(await self.redis.set(key, raw, ttl)).inc()

    async def drain(self, timeout_s: float = 1.0) -> None:
        """Wait (bounded) for background writes; used at shutdown and by tests."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)

    async def close(self) -> None:
        await self.drain()
        if self.redis is not None:
            await self.redis.close()
