"""The shared tier: Redis (standalone or Cluster) behind a timeout and a circuit breaker.

Every call is bounded by ``timeout_ms``; a timeout or error counts as a failure for the
breaker and reads as a miss. While the breaker is open no call is made at all, so a dead or
slow Redis costs the answer nothing. Nothing here ever raises to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from router_service.cache.breaker import BreakerState, CircuitBreaker
from router_service.metrics import Metrics

__all__ = ["RedisTier"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_FAILURES = (RedisError, OSError, TimeoutError, asyncio.TimeoutError)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome so that asyncio does not log it as unhandled."""
    if not task.cancelled():
        task.exception()


class RedisTier:
    """``client`` should fail fast (no retries of its own: the breaker decides when to try
    again). Timeouts are in milliseconds; ``breaker_failures`` consecutive failures open the
    breaker for ``breaker_reset_s`` seconds."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        metrics: Metrics,
        *,
        timeout_ms: float,
        write_timeout_ms: float,
        connect_timeout_ms: float,
        breaker_failures: int,
        breaker_reset_s: float,
    ) -> None:
        self._client = client
        self._timeout = timeout_ms / 1000
        self._write_timeout = write_timeout_ms / 1000
        self._connect_timeout = connect_timeout_ms / 1000
        self._metrics = metrics
        self.breaker = CircuitBreaker(breaker_failures, breaker_reset_s, on_change=self._on_breaker)

    def _on_breaker(self, state: BreakerState) -> None:
        self._metrics.cache_breaker_state.set(int(state))
        if state is BreakerState.OPEN:
            self._metrics.cache_breaker_opened.inc()
            log.warning("redis circuit breaker opened: answering without the shared cache")
        else:
            log.info("redis circuit breaker %s", state.name.lower())

    async def warm(self) -> bool:
        """Connect (and, for a cluster, learn the slots) with the lenient connect timeout."""
        try:
            await asyncio.wait_for(self._client.ping(), self._connect_timeout * 5)
        except _FAILURES as exc:
            log.warning(
                "redis not reachable at start-up (%s); serving without it for now",
                type(exc).__name__,
            )
            return False
        return True

    async def _call(self, op: Awaitable[_T], timeout_s: float) -> tuple[bool, _T | None]:
        """Run one Redis call for at most ``timeout_s``. Past it the call is abandoned: it is
        cancelled in the background, so a client library that is slow to unwind (a reply
        half-read from a stalled server) never holds up the answer."""
        task = asyncio.ensure_future(op)
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            task.add_done_callback(_consume)
            self.breaker.failure()
            return False, None
        try:
            result = task.result()
        except _FAILURES:
            self.breaker.failure()
            return False, None
        self.breaker.success()
        return True, result

    async def get(self, key: str) -> tuple[str, bytes | None]:
        """``(result, value)``: result is ``hit``, ``miss``, ``error`` or ``skipped`` (open)."""
        if not self.breaker.allow():
            return "skipped", None
        ok, value = await self._call(self._client.get(key), self._timeout)
        if not ok:
            return "error", None
        if value is None:
            return "miss", None
        return "hit", value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float) -> str:
        """``ok``, ``error`` or ``skipped``. Every key gets a TTL (milliseconds precision)."""
        if not self.breaker.allow():
            return "skipped"
        ok, _ = await self._call(
            self._client.set(key, value, px=max(1, int(ttl_s * 1000))), self._write_timeout
        )
        return "ok" if ok else "error"

    async def close(self) -> None:
        with contextlib.suppress(*_FAILURES):
            await asyncio.wait_for(self._client.aclose(), 1.0)
