"""The cache's contract, tested differentially: random sequences of requests, outcome reports,
candidate orders and passing time go through an engine without a cache and through two
replicas sharing a real Redis (one with its in-process tier, one reading Redis alone); every
answer must be the same model, scores and reason on all three."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_service.bundles.base import RouterTable
from router_service.config import LimitsSettings, load_settings
from router_service.domain import Candidate, Outcome, Policy, RouteInput, Source
from router_service.engine.engine import DecisionEngine
from router_service.engine.health import ModelHealth
from router_service.metrics import Metrics
from router_service.server import build_cache
from router_service.strategies.static import Fallback
from tests.support.learned import MODELS, CountingFeaturizer, learned_router

pytestmark = pytest.mark.integration

NAMES = [*MODELS[:5], "unknown-model"]
PROMPTS = [
    "What is the capital of Australia?",
    "What is the  capital of Australia?",  # differs only in whitespace
    "Write a haiku about rain.\nThen explain it.",
    "Prove that there are infinitely many primes \ud800.",  # a lone surrogate
    "Translate 'bonjour' into English.",
]

candidate = st.builds(
    Candidate,
    name=st.sampled_from(NAMES),
    input_price=st.sampled_from([None, 0.1, 0.5, 3.0]),
    output_price=st.sampled_from([None, 0.2, 2.0]),
    unavailable=st.booleans(),
)
candidates = st.lists(candidate, min_size=1, max_size=6, unique_by=lambda c: c.name)
policy = st.builds(
    Policy,
    cost_weight=st.sampled_from([None, 0.0, 0.05, 0.5, 2.0]),
    min_quality=st.sampled_from([None, None, 0.3, 0.8]),
)
tenant = st.sampled_from(["", "alice", "bob"])
route = st.tuples(st.just("route"), st.sampled_from(PROMPTS), candidates, policy, tenant)
report = st.tuples(st.just("report"), st.sampled_from(NAMES), st.booleans(), tenant)
tick = st.tuples(st.just("tick"), st.sampled_from([1.0, 12.0, 31.0]))
steps = st.lists(st.one_of(route, route, report, tick), min_size=1, max_size=25)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _engine(url: str | None, lru_entries: int, clock: Clock, sha: str) -> tuple[Any, Any]:
    cache = None
    if url is not None:
        cache = build_cache(
            load_settings(cache={"lru_max_entries": lru_entries, "redis": {"url": url}}),
            Metrics(),
        )
    engine = DecisionEngine(LimitsSettings(), Fallback(), ModelHealth(30, clock=clock), cache=cache)
    router = learned_router(CountingFeaturizer(sha256=sha), sha256=sha)
    engine.install(RouterTable({"ml": router}, default="ml"))
    return engine, cache


def _request(step: tuple[Any, ...], i: int) -> RouteInput:
    _, prompt, cands, pol, who = step
    return RouteInput(
        f"r{i}", tuple(cands), prompt=prompt, policy=pol, labels={"tenant": who} if who else {}
    )


async def _run(url: str, plan: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    sha = uuid.uuid4().hex * 2  # entries of earlier examples never answer this one
    fresh, _ = _engine(None, 0, clock, sha)
    replica_a, cache_a = _engine(url, 1000, clock, sha)
    replica_b, cache_b = _engine(url, 0, clock, sha)  # reads Redis only
    try:
        first: RouteInput | None = None
        for i, step in enumerate(plan):
            if step[0] == "tick":
                clock.now += step[1]
            elif step[0] == "report":
                _, model, did_fail, who = step
                labels = {"tenant": who} if who else {}
                for engine in (fresh, replica_a, replica_b):
                    engine.record_outcome(Outcome("o", model, None, 1.0, 0.0, did_fail, "", labels))
            else:
                req = _request(step, i)
                first = first or req
                want = await fresh.route(req)
                for engine, cache in ((replica_a, cache_a), (replica_b, cache_b)):
                    got = await engine.route(req)
                    await cache.drain()  # the shared tier holds what was just written
                    assert (got.model, got.scores, got.reason) == (
                        want.model,
                        want.scores,
                        want.reason,
                    ), (step, got.source)
        if first is not None:  # the shared tier did answer: a replay on B is a hit from Redis
            want = await fresh.route(first)
            replay = await replica_b.route(first)
            assert replay.model == want.model
            assert replay.source == (Source.CACHE if want.source == Source.MODEL else want.source)
    finally:
        await cache_a.close()
        await cache_b.close()


@settings(
    max_examples=int(os.environ.get("ROUTEIQ_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_answers_with_the_cache_equal_answers_without_it(redis_server: Any, plan: Any) -> None:
    asyncio.run(_run(redis_server.url, plan))
