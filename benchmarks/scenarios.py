"""The load scenarios: which server, which bundle and config, which requests.

Every scenario runs at each concurrency (calls in flight) of the run. Miss scenarios turn the
in-process LRU off (``cache.lru_max_entries: 0``) and use no Redis, so every request is
featurized and scored; hit scenarios warm the cache first. ``connections`` caps ghz's HTTP/2
connections (at most one per call in flight): several workers only share the load when there
are several connections, because SO_REUSEPORT spreads connections, not calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FULL", "SMOKE", "Scenario", "service_config"]

Prompts = Literal["same", "unique", "pool"]
RedisMode = Literal["none", "miss", "hit"]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    server: Literal["service", "echo"] = "service"
    bundle: str = "tfidf"  # key of the bundle served (the first bundle is the default router)
    router: str = ""  # empty: the bundle's router; else a static router such as "cheapest"
    method: Literal["Route", "RouteBatch"] = "Route"
    batch: int = 1  # requests per RouteBatch call
    prompts: Prompts = "unique"  # same prompt / unique prompts / a small pool warmed first
    lru: bool = False
    redis: RedisMode = "none"
    workers: int = 1
    connections: int = 1
    expect: str = "MODEL"  # the decision source every answer should have

    @property
    def warm_pool(self) -> bool:
        """Whether the prompt pool must be answered once before each measurement."""
        return self.prompts == "pool"


def service_config(
    scenario: Scenario, metrics_port: int, outcomes: str, redis_url: str | None
) -> dict[str, Any]:
    """The YAML config of the service for ``scenario`` (port, workers, bundles: flags)."""
    cache: dict[str, Any] = {} if scenario.lru else {"lru_max_entries": 0}
    if redis_url is not None:
        cache["redis"] = {"url": redis_url}
    return {
        "cache": cache,
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
        "telemetry": {"outcomes_path": outcomes},
        "log_level": "WARNING",
    }


_ECHO = Scenario("echo", "echo server (raw gRPC ceiling)", server="echo", prompts="same", expect="")
_HIT = Scenario(
    "cache-hit", "cache hit, same prompt (LRU)", prompts="same", lru=True, expect="CACHE"
)
_STATIC = Scenario(
    "static", "static router `cheapest`", router="cheapest", prompts="same", expect="STATIC"
)
_TFIDF = Scenario("tfidf-miss", "miss, kNN over TF-IDF")

FULL: tuple[Scenario, ...] = (
    _ECHO,
    _HIT,
    _STATIC,
    _TFIDF,
    Scenario("static-miss", "miss, kNN over the static encoder", bundle="static"),
    Scenario("minilm-miss", "miss, kNN over MiniLM fp32", bundle="minilm"),
    Scenario("minilm-int8-miss", "miss, kNN over MiniLM int8", bundle="minilm-int8"),
    Scenario("linear-tfidf-miss", "miss, linear over TF-IDF", bundle="linear-tfidf"),
    Scenario("linear-int8-miss", "miss, linear over MiniLM int8", bundle="linear-minilm-int8"),
    Scenario("batch16-miss", "RouteBatch of 16, TF-IDF misses", method="RouteBatch", batch=16),
    Scenario("workers1-miss", "TF-IDF miss, 1 process, 8 connections", connections=8),
    Scenario("workers2-miss", "TF-IDF miss, 2 processes, 8 connections", workers=2, connections=8),
    Scenario(
        "lru-hit", "hit from the LRU, 2k-prompt pool", prompts="pool", lru=True, expect="CACHE"
    ),
    Scenario(
        "redis-hit",
        "hit from Redis (LRU off), 2k-prompt pool",
        prompts="pool",
        redis="hit",
        expect="CACHE",
    ),
    Scenario("redis-miss", "miss with Redis (LRU off; Redis flushed)", redis="miss"),
)

SMOKE: tuple[Scenario, ...] = (
    _ECHO,
    _HIT,
    _STATIC,
    _TFIDF,
    Scenario("batch4-miss", "RouteBatch of 4, TF-IDF misses", method="RouteBatch", batch=4),
)
