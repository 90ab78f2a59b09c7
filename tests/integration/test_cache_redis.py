"""The two-tier cache against a real redis-server (standalone and Cluster)."""

import asyncio
import gc
import statistics
import time
from typing import Any

import pytest
import redis

from router_service.bundles.base import RouterTable
from router_service.cache.breaker import BreakerState
from router_service.config import LimitsSettings, load_settings
from router_service.domain import Candidate, RouteInput, Source
from router_service.engine.engine import DecisionEngine
from router_service.engine.health import ModelHealth
from router_service.metrics import Metrics
from router_service.server import build_cache
from router_service.strategies.static import Fallback
from tests.support.learned import CountingFeaturizer, learned_router

pytestmark = pytest.mark.integration

CANDS = (Candidate("a", 0.1, 0.2), Candidate("b", 1.0, 2.0), Candidate("c"))
PROMPT = "Please translate the sentence 'the quick brown fox' into French."


def make(
    url: str | None,
    feat: CountingFeaturizer,
    sha: str = "ab" * 32,
    cluster: bool = False,
    timeout_ms: float = 20.0,
    cache_kw: dict[str, Any] | None = None,
    **redis_kw: Any,
) -> tuple[DecisionEngine, Any, Metrics]:
    redis_cfg = {"url": url, "cluster": cluster, "timeout_ms": timeout_ms, **redis_kw}
    settings = load_settings(cache={"redis": redis_cfg, **(cache_kw or {})})
    metrics = Metrics()
    cache = build_cache(settings, metrics)
    engine = DecisionEngine(
        LimitsSettings(),
        Fallback(),
        ModelHealth(30),
        cache=cache,
        metrics=metrics,
    )
    engine.install(RouterTable({"ml": learned_router(feat, sha)}, default="ml"))
    return engine, cache, metrics


def req(prompt: str = PROMPT, rid: str = "r") -> RouteInput:
    return RouteInput(request_id=rid, candidates=CANDS, prompt=prompt)


async def test_repeated_prompt_is_a_decision_hit_and_skips_the_featurizer(
    redis_server: Any,
) -> None:
    feat = CountingFeaturizer()
    engine, cache, _ = make(redis_server.url, feat)
    first = await engine.route(req(rid="one"))
    second = await engine.route(req(rid="two"))
    assert (first.source, second.source) == (Source.MODEL, Source.CACHE)
    assert second.model == first.model and second.request_id == "two"
    assert feat.calls == 1
    await cache.close()


async def test_a_replica_gets_a_redis_hit_and_a_new_bundle_misses(redis_server: Any) -> None:
    feat_a, feat_b, feat_c = CountingFeaturizer(), CountingFeaturizer(), CountingFeaturizer()
    engine_a, cache_a, _ = make(redis_server.url, feat_a)
    await engine_a.route(req())
    await cache_a.drain()
    engine_b, cache_b, metrics_b = make(redis_server.url, feat_b)  # another replica, empty LRU
    hit = await engine_b.route(req())
    assert hit.source == Source.CACHE and feat_b.calls == 0
    assert (
        metrics_b.sample(
            "routeiq_cache_requests_total", {"tier": "redis", "kind": "prediction", "result": "hit"}
        )
        == 1
    )
    engine_c, cache_c, _ = make(redis_server.url, feat_c, sha="cd" * 32)  # new bundle version
    fresh = await engine_c.route(req())
    assert fresh.source == Source.MODEL
    assert feat_c.calls == 0  # same featurizer sha: the features came from the cache
    for cache in (cache_a, cache_b, cache_c):
        await cache.close()


async def test_every_key_has_a_ttl_and_no_prompt_text(redis_server: Any) -> None:
    feat = CountingFeaturizer()
    engine, cache, _ = make(redis_server.url, feat)
    prompts = [f"{PROMPT} variant {i}" for i in range(5)]
    for p in prompts:
        await engine.route(req(p))
    await cache.drain()
    client = redis.Redis.from_url(redis_server.url)
    keys = client.keys("*")
    assert len(keys) == 10  # 5 predictions + 5 feature rows
    for key in keys:
        ttl_ms = client.pttl(key)
        assert 0 < ttl_ms <= 86_400_000, (key, ttl_ms)
        value = client.get(key)
        for text in (b"translate", b"quick brown fox", b"variant"):
            assert text not in key and text not in value
    prediction_ttls = [client.pttl(k) for k in keys if k.startswith(b"riq:p:")]
    assert len(prediction_ttls) == 5 and all(ttl <= 600_000 for ttl in prediction_ttls)
    client.close()
    await cache.close()


async def _load(
    engine: DecisionEngine,
    stop: asyncio.Event,
    results: list[Any],
    latencies: list[float],
    n_prompts: int = 50,
) -> None:
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            d = await engine.route(req(f"{PROMPT} #{i % n_prompts}", rid=str(i)))
            results.append(d.source)
        except Exception as exc:  # a failed call is what this test looks for
            results.append(exc)
        latencies.append(time.perf_counter() - t0)
        i += 1
        await asyncio.sleep(0)


async def test_redis_killed_mid_load_then_back(redis_server: Any) -> None:
    feat = CountingFeaturizer()
    engine, cache, metrics = make(
        redis_server.url,
        feat,
        timeout_ms=20,
        breaker_failures=3,
        breaker_reset_s=0.2,
        cache_kw={"lru_max_entries": 0},
    )
    stop, results, lat = asyncio.Event(), [], []
    workers = [asyncio.create_task(_load(engine, stop, results, lat)) for _ in range(8)]
    await asyncio.sleep(0.3)
    redis_server.kill()
    await asyncio.sleep(0.5)
    assert cache.redis.breaker.state is not BreakerState.CLOSED
    during = len(results)
    redis_server.start()
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*workers)
    assert not [r for r in results if isinstance(r, Exception)]
    assert cache.redis.breaker.state is BreakerState.CLOSED
    assert metrics.sample("routeiq_cache_breaker_opened_total") >= 1
    hits_after = [r for r in results[during:] if r is Source.CACHE]
    assert hits_after, "cache hits resumed after Redis came back"
    await cache.close()


async def test_slow_redis_costs_at_most_the_cache_timeout(redis_server: Any) -> None:
    # A full collection of the test session's heap (hundreds of MB by now) can stall the loop
    # for a few hundred ms: objects made before this test are not its to collect.
    gc.collect()
    gc.freeze()
    try:
        await _slow_redis_costs_at_most_the_cache_timeout(redis_server)
    finally:
        gc.unfreeze()


async def _slow_redis_costs_at_most_the_cache_timeout(redis_server: Any) -> None:
    feat = CountingFeaturizer()
    engine, cache, _ = make(
        redis_server.url, feat, timeout_ms=5, breaker_failures=1000, cache_kw={"lru_max_entries": 0}
    )
    sleeper = asyncio.create_task(asyncio.to_thread(redis_server.cli, "DEBUG", "SLEEP", "1.5"))
    await asyncio.sleep(0.1)
    stop, results, lat = asyncio.Event(), [], []
    workers = [asyncio.create_task(_load(engine, stop, results, lat)) for _ in range(4)]
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*workers)
    await sleeper
    assert not [r for r in results if isinstance(r, Exception)]
    p99 = statistics.quantiles(lat, n=100)[98]
    # Each call waits at most two Redis timeouts (decision, then features) plus the model
    # path; Redis itself is asleep for 1.5 s, so without the timeout this would be ~1.5 s.
    slowest = sorted(range(len(lat)), key=lat.__getitem__)[-5:]
    assert p99 < 0.25, (
        f"p99 {p99 * 1000:.1f} ms of {len(lat)} calls; slowest (index: ms) "
        + ", ".join(f"{i}: {lat[i] * 1000:.0f}" for i in slowest)
    )
    await cache.close()


async def test_redis_cluster_caches_decisions(redis_cluster: Any) -> None:
    feat = CountingFeaturizer()
    engine, cache, _ = make(redis_cluster.url, feat, cluster=True, timeout_ms=1000)
    assert await cache.redis.warm()
    prompts = [f"{PROMPT} cluster {i}" for i in range(12)]
    for p in prompts:
        await engine.route(req(p))
    await cache.drain()
    engine2, cache2, _ = make(redis_cluster.url, CountingFeaturizer(), cluster=True, timeout_ms=50)
    assert await cache2.redis.warm()
    again = [await engine2.route(req(p)) for p in prompts]
    assert all(d.source is Source.CACHE for d in again)
    spread = [int(n.cli("DBSIZE")) for n in redis_cluster.nodes]
    assert sum(spread) == 24 and all(n > 0 for n in spread), spread
    await cache.close()
    await cache2.close()
