"""Prometheus metrics, in a registry the server owns (no module-level globals).

Exposed over HTTP on ``metrics.port`` when set (worker *i* of several uses ``port + i``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics", "RpcMetrics"]

# Resolve 50 µs to 100 ms: a cache hit takes tens of µs inside the service, a miss about a
# millisecond, a MiniLM featurizer tens of milliseconds.
LATENCY_BUCKETS_S = (
    25e-6,
    50e-6,
    75e-6,
    100e-6,
    150e-6,
    250e-6,
    500e-6,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rpcs = Counter(
            "routeiq_rpc_requests",
            "gRPC calls finished, by method (service/method) and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "routeiq_rpc_seconds",
            "Time in the handler per gRPC call (a stream: its whole life)",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.rpc_in_flight = Gauge(
            "routeiq_rpc_in_flight",
            "gRPC calls being handled now",
            ["method"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "routeiq_decisions",
            "Routing decisions answered, by router, router version and source",
            ["router", "version", "source"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "routeiq_decision_seconds",
            "Time inside the service per decision",
            ["source"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "routeiq_stage_seconds",
            "Time per decision stage of a learned router: prediction_cache, feature_cache, "
            "inference (queue wait + job), policy",
            ["router", "stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.inference_queue_seconds = Histogram(
            "routeiq_inference_queue_seconds",
            "Time a learned-router request waited for its micro-batch job to start",
            ["router"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "routeiq_fallbacks",
            "Decisions the fallback answered because the router could not, by reason: timeout, "
            "shed, unknown_models, no_featurizer, invalid_choice, strategy_error, error",
            ["router", "reason"],
            registry=self.registry,
        )
        self.inference_batch = Histogram(
            "routeiq_inference_batch_size",
            "Learned-router requests per inference job (micro-batching)",
            ["router"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.shed = Counter(
            "routeiq_shed",
            "Requests a learned router shed at once (its queue already exceeded their time "
            "budget); the fallback answered them",
            ["router"],
            registry=self.registry,
        )
        self.registry_swaps = Counter(
            "routeiq_registry_swaps",
            "Registry versions that passed verification and were swapped in",
            ["router", "side"],
            registry=self.registry,
        )
        self.registry_refused = Counter(
            "routeiq_registry_refused",
            "Registry versions refused (verification, signature or load failed); the version "
            "already serving kept serving",
            ["router"],
            registry=self.registry,
        )
        self.shadow = Counter(
            "routeiq_shadow_decisions",
            "Shadow challenger decisions: recorded (agree / disagree with the answer), "
            "skipped (too many in flight, or over the shadow budget)",
            ["router", "result"],
            registry=self.registry,
        )
        self.cache_requests = Counter(
            "routeiq_cache_requests",
            "Cache lookups by tier, entry kind and result",
            ["tier", "kind", "result"],
            registry=self.registry,
        )
        self.cache_writes = Counter(
            "routeiq_cache_writes",
            "Redis writes by result (ok, error, skipped, dropped)",
            ["result"],
            registry=self.registry,
        )
        self.cache_breaker_state = Gauge(
            "routeiq_cache_breaker_state",
            "Redis circuit breaker: 0 closed, 1 open, 2 half-open",
            registry=self.registry,
        )
        self.cache_breaker_opened = Counter(
            "routeiq_cache_breaker_opened",
            "Times the Redis circuit breaker opened",
            registry=self.registry,
        )

        self.events_written = Counter(
            "routeiq_events_written",
            "Decision and outcome events written, by store (jsonl, redis)",
            ["store"],
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "routeiq_events_dropped",
            "Decision and outcome events dropped: the buffer was full or the store failed",
            registry=self.registry,
        )
        self.budget_lambda = Gauge(
            "routeiq_budget_lambda",
            "The λ a budget holds a router's decisions at (NaN until its window fills)",
            ["router", "tenant"],
            registry=self.registry,
        )
        self.budget_value = Gauge(
            "routeiq_budget_value",
            "What a budget holds, over its window at the λ in force: the share, USD per 1,000 "
            "requests, or the quality relative to the best candidate",
            ["router", "tenant"],
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._rpc: dict[str, RpcMetrics] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, memoized: the lookup costs more than the increment,
        and label sets here are few (routers x sources, tiers x kinds x results)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_decision(self, router: str, version: str, source: str, seconds: float) -> None:
        self._child(self.decisions, router, version, source).inc()
        self._child(self.decision_seconds, source).observe(seconds)

    def observe_stage(self, router: str, stage: str, seconds: float) -> None:
        self._child(self.stage_seconds, router, stage).observe(seconds)

    def observe_queue_wait(self, router: str, seconds: float) -> None:
        self._child(self.inference_queue_seconds, router).observe(seconds)

    def count_fallback(self, router: str, reason: str) -> None:
        self._child(self.fallbacks, router, reason).inc()

    def rpc(self, method: str) -> RpcMetrics:
        """The counters of one gRPC method, resolved once (when its handler is registered; a
        method served on several ports shares them)."""
        rpc = self._rpc.get(method)
        if rpc is None:
            rpc = self._rpc[method] = RpcMetrics(self, method)
        return rpc

    def observe_batch(self, router: str, size: int) -> None:
        self._child(self.inference_batch, router).observe(size)

    def count_shed(self, router: str) -> None:
        self._child(self.shed, router).inc()

    def count_swap(self, router: str, side: str) -> None:
        self._child(self.registry_swaps, router, side).inc()

    def count_refused(self, router: str) -> None:
        self._child(self.registry_refused, router).inc()

    def count_shadow(self, router: str, result: str) -> None:
        self._child(self.shadow, router, result).inc()

    def watch_audit(self, unsafe_loaded: Callable[[], int], unpickled: Callable[[], int]) -> None:
        """Gauges read at scrape time from the import audit (router_service.security.audit)."""
        Gauge(
            "routeiq_unsafe_loaders_loaded",
            "Pickle-capable loader modules (joblib, sklearn, skops, torch, cloudpickle, dill) "
            "present in the serving process; 0 expected",
            registry=self.registry,
        ).set_function(unsafe_loaded)
        Gauge(
            "routeiq_unpickled_classes",
            "Classes resolved by unpickling in the serving process since start; 0 expected",
            registry=self.registry,
        ).set_function(unpickled)

    def watch_budget(self, router: str, tenant: str, budget: Any) -> None:
        """Gauges read at scrape time from a budget controller (its ``lam`` and ``value``)."""
        self.budget_lambda.labels(router, tenant).set_function(
            lambda: math.nan if budget.lam is None else budget.lam
        )
        self.budget_value.labels(router, tenant).set_function(
            lambda: math.nan if budget.value is None else budget.value
        )

    def count_cache(self, tier: str, kind: str, result: str) -> None:
        self._child(self.cache_requests, tier, kind, result).inc()

    def serve_http(self, host: str, port: int) -> None:
        """Start the /metrics endpoint in a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0 when absent); for tests and summaries."""
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value


class RpcMetrics:
    """One method's call metrics. Calls in flight are a plain int read at scrape time (the
    event loop is the only writer); per call that leaves one counter and one histogram."""

    __slots__ = ("_by_code", "_method", "_rpcs", "_seconds", "in_flight")

    def __init__(self, metrics: Metrics, method: str) -> None:
        self.in_flight = 0
        self._method = method
        self._rpcs = metrics.rpcs
        self._by_code: dict[str, Any] = {}
        self._seconds = metrics.rpc_seconds.labels(method)
        metrics.rpc_in_flight.labels(method).set_function(lambda: self.in_flight)

    def finished(self, code: str, seconds: float) -> None:
        self.in_flight -= 1
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self._rpcs.labels(self._method, code)
        counter.inc()
        self._seconds.observe(seconds)
