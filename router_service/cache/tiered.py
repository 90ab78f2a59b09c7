"""Two tiers behind one interface: the in-process LRU in front of Redis (optional).

Reads: LRU, then Redis (a Redis hit is decoded once and kept decoded in the LRU). Writes: the
LRU at once, Redis in a background task, so a write never adds latency to the answer; at most
``max_pending_writes`` Redis writes are in flight, extra ones are dropped and counted. Values
that fail to decode read as misses. Keys are hashes (see :mod:`router_service.cache.keys`);
prompts are never stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from router_service.cache.codec import (
    decode_decision,
    decode_features,
    encode_decision,
    encode_features,
)
from router_service.cache.lru import LruCache
from router_service.cache.redis_tier import RedisTier
from router_service.engine.types import Decision
from router_service.metrics import Metrics

__all__ = ["TieredCache"]

log = logging.getLogger(__name__)
_V = TypeVar("_V")
Features = npt.NDArray[np.float32]


class TieredCache:
    """Implements both :class:`DecisionCache` and :class:`FeatureCache`."""

    def __init__(
        self,
        lru: LruCache[Decision | Features],
        redis: RedisTier | None,
        metrics: Metrics,
        *,
        decision_ttl_s: float,
        feature_ttl_s: float,
        max_pending_writes: int = 1000,
    ) -> None:
        self.lru = lru
        self.redis = redis
        self._metrics = metrics
        self._decision_ttl = decision_ttl_s
        self._feature_ttl = feature_ttl_s
        self._max_pending = max_pending_writes
        self._pending: set[asyncio.Task[None]] = set()

    async def _get(
        self, key: str, kind: str, decode: Callable[[bytes], _V], ttl: float
    ) -> _V | None:
        count = self._metrics.count_cache
        value = self.lru.get(key)
        if value is not None:
            count("lru", kind, "hit")
            return cast(_V, value)
        count("lru", kind, "miss")
        if self.redis is None:
            return None
        result, raw = await self.redis.get(key)
        count("redis", kind, result)
        if raw is None:
            return None
        try:
            decoded = decode(raw)
        except ValueError:
            count("any", kind, "corrupt")
            log.warning("dropping an undecodable %s cache entry %s", kind, key[:24])
            return None
        self.lru.put(key, cast(Decision | Features, decoded), len(raw), ttl)
        return decoded

    def _put(self, key: str, value: Decision | Features, raw: bytes, ttl: float) -> None:
        self.lru.put(key, value, len(raw), ttl)
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

    async def get_decision(self, key: str) -> Decision | None:
        return await self._get(key, "decision", decode_decision, self._decision_ttl)

    @property
    def _stores(self) -> bool:
        """Whether any tier keeps what is put (else there is nothing to encode for)."""
        return self.lru.enabled or self.redis is not None

    def put_decision(self, key: str, decision: Decision) -> Decision:
        if not self._stores:
            return decision
        raw = encode_decision(decision)
        kept = dataclasses.replace(decision, encoded=raw)
        self._put(key, kept, raw, self._decision_ttl)
        return kept

    async def get_features(self, key: str) -> Features | None:
        return await self._get(key, "features", decode_features, self._feature_ttl)

    def put_features(self, key: str, features: Features) -> None:
        if not self._stores:
            return
        raw = encode_features(features)
        self._put(key, decode_features(raw), raw, self._feature_ttl)  # a copy nobody else holds

    async def drain(self, timeout_s: float = 1.0) -> None:
        """Wait (bounded) for background writes; used at shutdown and by tests."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)

    async def close(self) -> None:
        await self.drain()
        if self.redis is not None:
            await self.redis.close()
