"""Per-tenant rate limits: a token bucket per tenant (``rate_limits``), refilled continuously.

A call that finds its tenant's bucket empty is ``RESOURCE_EXHAUSTED`` with a retry hint: the
message says when enough tokens will be there, and the trailing metadata carries it as
``grpc-retry-pushback-ms`` (gRPC clients with a retry policy honour it). With auth on, the
tenant is the token's, so a caller cannot spread its calls over made-up tenants; without auth it
is the ``tenant`` label as sent. A ``RouteBatch`` of N requests takes N tokens.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from router_service.config import RateLimitSettings
from router_service.errors import Overloaded

__all__ = ["RateLimited", "RateLimiter"]

_MAX_TENANTS = 100_000


class RateLimited(Overloaded):
    """A tenant's bucket is empty; ``retry_after_s`` says when it will hold enough."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimiter:
    def __init__(self, cfg: RateLimitSettings) -> None:
        self._cfg = cfg
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    @classmethod
    def from_settings(cls, cfg: RateLimitSettings) -> RateLimiter | None:
        return cls(cfg) if cfg.enabled else None

    def take(self, tenant: str, n: int = 1) -> None:
        """Take ``n`` tokens from ``tenant``'s bucket, or raise :class:`RateLimited`."""
        rule = self._cfg.tenants.get(tenant, self._cfg.default)
        if rule is None:
            return
        now = time.monotonic()
        tokens, at = self._buckets.get(tenant, (float(rule.burst), now))
        tokens = min(float(rule.burst), tokens + (now - at) * rule.rps)
        if tokens < n:
            wait = (n - tokens) / rule.rps if n <= rule.burst else float("inf")
            self._store(tenant, tokens, now)
            who = f"tenant {tenant!r}" if tenant else "requests without a tenant"
            if wait == float("inf"):
                raise RateLimited(
                    f"{who}: {n} requests at once is over the burst of {rule.burst}", 60.0
                )
            raise RateLimited(f"{who} is over {rule.rps:g} requests/s; retry in {wait:.3f} s", wait)
        self._store(tenant, tokens - n, now)

    def _store(self, tenant: str, tokens: float, now: float) -> None:
        self._buckets[tenant] = (tokens, now)
        self._buckets.move_to_end(tenant)
        if len(self._buckets) > _MAX_TENANTS:
            self._buckets.popitem(last=False)
