"""Decisions that never lie: a cached answer is exactly what a fresh decision would say now,
outcome reports cannot steer other tenants, and one request cannot spoil another's answer.

Each test drives the real engine with a real ONNX quality router (prediction = the feature
row) over an in-process cache, beside an engine without a cache, and compares their answers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from router_service.bundles.base import RouterTable
from router_service.cache.lru import LruCache
from router_service.cache.tiered import TieredCache
from router_service.config import LimitsSettings
from router_service.domain import Candidate, Decision, Outcome, Policy, RouteInput, Source
from router_service.engine.engine import DecisionEngine
from router_service.engine.health import ModelHealth
from router_service.metrics import Metrics
from router_service.strategies.static import Fallback
from tests.support.learned import MODELS, CountingFeaturizer, identity_router, learned_router

PROMPT = "Summarise the causes of the French revolution in three sentences."
ALL = tuple(Candidate(m) for m in MODELS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    clock: Clock,
    *,
    cached: bool = True,
    featurizer: CountingFeaturizer | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> DecisionEngine:
    cache = None
    if cached:
        ttl = {"prediction": 600.0, "features": 600.0}
        cache = TieredCache(LruCache(1000, 1 << 20), None, Metrics(), ttl_s=ttl)
    engine = DecisionEngine(
        LimitsSettings(),
        Fallback(),
        ModelHealth(30, clock=clock),
        cache=cache,
        executor=executor,
        offload_timeout_s=0.05,
    )
    router = learned_router(featurizer or CountingFeaturizer())
    engine.install(RouterTable({"ml": router}, default="ml"))
    return engine


def ask(
    cands: Sequence[Candidate] = ALL,
    prompt: str = PROMPT,
    tenant: str | None = None,
    policy: Policy | None = None,
    rid: str = "r",
) -> RouteInput:
    policy = policy or Policy()
    labels = {} if tenant is None else {"tenant": tenant}
    return RouteInput(rid, tuple(cands), prompt=prompt, policy=policy, labels=labels)


def answer(d: Decision) -> tuple[object, ...]:
    """Everything a decision says but its id, source and latency."""
    return (d.model, d.scores, d.reason, d.router, d.router_version)


def failed(model: str, tenant: str | None = None, ok: bool = False) -> Outcome:
    labels = {} if tenant is None else {"tenant": tenant}
    return Outcome("o", model, None, 1.0, 0.0, not ok, "ml", labels)


async def test_a_cached_answer_follows_model_health_both_ways() -> None:
    """Reproduction 1: a benched model came back from the cache; and answers made while a
    model was benched were served after it recovered."""
    clock = Clock()
    cached, fresh = make(clock), make(clock, cached=False)
    first = await cached.route(ask())
    assert first.source == Source.MODEL
    for engine in (cached, fresh):
        engine.record_outcome(failed(first.model))
    during = await cached.route(ask())
    assert during.source == Source.CACHE and during.model != first.model
    assert answer(during) == answer(await fresh.route(ask()))
    clock.now += 31  # the bench is over
    after = await cached.route(ask())
    assert after.source == Source.CACHE and after.model == first.model
    assert answer(after) == answer(await fresh.route(ask()))


async def test_outcome_reports_bench_models_only_for_their_own_tenant() -> None:
    """Reproduction 2: benching 8 of 9 models moved every caller's decisions; one success
    report un-benched at once."""
    engine = make(Clock())
    before = await engine.route(ask(tenant="alice"))
    for model in MODELS[:-1]:
        engine.record_outcome(failed(model, tenant="mallory"))
    assert answer(await engine.route(ask(tenant="alice"))) == answer(before)
    assert answer(await engine.route(ask())) == answer(before)  # nor requests without a tenant
    steered = await engine.route(ask(tenant="mallory"))
    assert steered.model == MODELS[-1]
    engine.record_outcome(failed(MODELS[0], tenant="mallory", ok=True))
    assert (await engine.route(ask(tenant="mallory"))).model == MODELS[-1]  # still benched


async def test_crafted_candidate_names_cannot_poison_another_offer() -> None:
    """Reproduction 4: names holding the old key's separators made one caller's key equal to
    another's, and the victim got the attacker's decision with 2 scores for 3 candidates."""
    clock = Clock()
    cached, fresh = make(clock), make(clock, cached=False)
    none = "\x1fNone\x1fNone\x1fFalse"
    crafted = (Candidate("a"), Candidate(f"b{none}\x1ec"))  # spelled like the victim's offer
    await cached.route(ask(crafted))
    victim = (Candidate("a"), Candidate("b"), Candidate("c"))
    hit = await cached.route(ask(victim))
    assert [s.model for s in hit.scores] == ["a", "b", "c"]
    assert answer(hit) == answer(await fresh.route(ask(victim)))


async def test_cached_scores_come_in_the_request_order() -> None:
    """Reproduction 5: the stored scores kept the first caller's order."""
    clock = Clock()
    cached, fresh = make(clock), make(clock, cached=False)
    await cached.route(ask(ALL))
    for order in (ALL[::-1], ALL[3:] + ALL[:3]):
        hit = await cached.route(ask(order))
        assert hit.source == Source.CACHE
        assert [s.model for s in hit.scores] == [c.name for c in order]
        assert answer(hit) == answer(await fresh.route(ask(order)))


async def test_tenants_do_not_share_cache_entries() -> None:
    """Reproduction 6: one tenant could learn whether another sent a prompt (CACHE vs MODEL)."""
    feat = CountingFeaturizer()
    engine = make(Clock(), featurizer=feat)
    assert (await engine.route(ask(tenant="alice"))).source == Source.MODEL
    assert (await engine.route(ask(tenant="bob"))).source == Source.MODEL
    assert (await engine.route(ask())).source == Source.MODEL
    assert feat.calls == 3  # no feature entry is shared either
    assert (await engine.route(ask(tenant="alice"))).source == Source.CACHE
    assert (await engine.route(ask(tenant="bob"))).source == Source.CACHE


async def test_lone_surrogates_are_hashed_and_routed() -> None:
    """Reproduction 7 (engine side): a text with a lone surrogate made the key hashing raise."""
    clock = Clock()
    cached, fresh = make(clock), make(clock, cached=False)
    odd = "a lone \ud800 surrogate"
    first = await cached.route(ask(prompt=odd))
    assert first.source == Source.MODEL
    again = await cached.route(ask(prompt=odd))
    assert again.source == Source.CACHE and answer(again) == answer(first)
    assert answer(await fresh.route(ask(prompt=odd))) == answer(first)


class SlowOnLongTexts(CountingFeaturizer):
    """Takes 0.2 s for a call holding a long text, no time otherwise."""

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any(len(t) > 10_000 for t in texts):
            import time

            time.sleep(0.2)
        return super().featurize(texts)


async def test_long_prompts_do_not_push_their_batch_mates_past_the_limit() -> None:
    """Reproduction 8: a RouteBatch of 8 very long prompts and 20 short ones answered all 20
    short ones from the fallback ("featurizer over 50 ms")."""
    with ThreadPoolExecutor(2) as pool:
        engine = make(Clock(), cached=False, featurizer=SlowOnLongTexts(), executor=pool)
        long = [ask(prompt=f"{i} " + "word " * 12_000, rid=f"long{i}") for i in range(8)]
        short = [ask(prompt=f"short question {i}?", rid=f"short{i}") for i in range(20)]
        out = await engine.route_batch([*long, *short])
    assert [d.source for d in out[8:]] == [Source.MODEL] * 20
    assert all(d.source == Source.FALLBACK and "over 50 ms" in d.reason for d in out[:8])


async def test_a_model_marked_unavailable_is_not_chosen_over_a_usable_candidate() -> None:
    """Reproduction 9: the learned router picked the unavailable model when the only other
    candidate was one it does not know; the static fallback got it right."""
    engine = make(Clock())
    cands = (Candidate("a", unavailable=True), Candidate("elsewhere"))
    d = await engine.route(ask(cands))
    assert d.model == "elsewhere" and d.source == Source.FALLBACK
    assert "unavailable" in d.reason
    alone = await engine.route(ask((Candidate("a", unavailable=True),)))
    assert alone.model == "a"  # nothing usable at all: a degraded answer beats none


async def test_candidates_the_router_does_not_know_are_not_featurized() -> None:
    feat = CountingFeaturizer()
    engine = make(Clock(), featurizer=feat)
    d = await engine.route(ask((Candidate("x"), Candidate("y"))))
    assert (d.source, d.model, feat.calls) == (Source.FALLBACK, "x", 0)
    assert "no candidate is a model this router knows" in d.reason


def test_nan_quality_is_no_prediction_wherever_the_candidate_stands() -> None:
    """Reproduction 10: NaN made the choice depend on candidate order (first: error and
    fallback; later: ignored; with min_quality unmet: chosen)."""
    router = identity_router(("a", "b", "c"))
    quality = np.array([0.4, math.nan, 0.6])
    health = ModelHealth(30).view("")
    trio = (Candidate("a"), Candidate("b"), Candidate("c"))
    for policy in (Policy(), Policy(min_quality=0.9), Policy(cost_weight=0.1)):
        picks = set()
        for order in itertools.permutations(trio):
            choice = router.choose_scored(ask(order, policy=policy), quality, health)
            by_model = {s.model: s for s in choice.scores}
            assert by_model["b"].score == -math.inf and by_model["b"].quality is None
            picks.add(choice.model)
        assert picks == {"c"}, policy
