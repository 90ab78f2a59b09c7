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
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from router_service.cache.breaker import BreakerState, CircuitBreaker
from router_service.config import RedisSettings
from router_service.metrics import Metrics

__all__ = ["RedisTier", "make_client"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_FAILURES = (RedisError, OSError, TimeoutError, asyncio.TimeoutError)


def make_client(cfg: RedisSettings) -> Redis | RedisCluster:
    """A client that fails fast (no retries; the breaker decides when to try again)."""
    if cfg.url is None:
        raise ValueError("redis url is not set")
    kwargs: dict[str, Any] = {
        "socket_timeout": max(cfg.timeout_ms, cfg.write_timeout_ms) / 1000 * 2,
        "socket_connect_timeout": cfg.connect_timeout_ms / 1000,
        "max_connections": cfg.max_connections,
    }
    if cfg.username is not None:
        kwargs["username"] = cfg.username
    if cfg.password is not None:
        kwargs["password"] = cfg.password
    if cfg.tls or cfg.url.startswith("rediss://"):
        kwargs |= {
            "ssl": True,
            "ssl_ca_certs": _str(cfg.tls_ca_file),
            "ssl_certfile": _str(cfg.tls_cert_file),
            "ssl_keyfile": _str(cfg.tls_key_file),
        }
    if cfg.cluster:
        return RedisCluster.from_url(cfg.url, retry=Retry(NoBackoff(), 0), **kwargs)
    return Redis.from_url(cfg.url, retry=Retry(NoBackoff(), 0), **kwargs)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome so that asyncio does not log it as unhandled."""
    if not task.cancelled():
        task.exception()


def _str(value: object) -> str | None:
    return None if value is None else str(value)


class RedisTier:
    def __init__(self, client: Redis | RedisCluster, cfg: RedisSettings, metrics: Metrics) -> None:
        self._client = client
        self._timeout = cfg.timeout_ms / 1000
        self._write_timeout = cfg.write_timeout_ms / 1000
        self._connect_timeout = cfg.connect_timeout_ms / 1000
        self._metrics = metrics
        self.breaker = CircuitBreaker(
            cfg.breaker_failures, cfg.breaker_reset_s, on_change=self._on_breaker
        )

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
