import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from router_service.bundles.base import LoadedRouter, RouterTable
from router_service.config import LimitsSettings
from router_service.domain import Candidate, Outcome, RouteInput, Source
from router_service.engine.engine import DecisionEngine
from router_service.engine.health import ModelHealth
from router_service.errors import InvalidRequest, NotReady, UnknownRouter
from router_service.strategies.static import Cheapest, Fallback
from tests.support.strategies import Broken, OffList, Slow

CANDS = (Candidate("a", 1.0, 1.0), Candidate("b", 0.1, 0.1))


def make_engine(
    *routers: LoadedRouter,
    executor: ThreadPoolExecutor | None = None,
    timeout_s: float = 0.05,
    router_timeouts_s: dict[str, float] | None = None,
) -> DecisionEngine:
    engine = DecisionEngine(
        LimitsSettings(),
        Fallback(),
        ModelHealth(30),
        executor=executor,
        offload_timeout_s=timeout_s,
        router_timeouts_s=router_timeouts_s,
    )
    table = {r.name: r for r in routers}
    engine.install(RouterTable(routers=table, default=routers[0].name))
    return engine


def router(name: str, strategy: object) -> LoadedRouter:
    return LoadedRouter(name=name, kind=name, version="v1", strategy=strategy)  # type: ignore[arg-type]


def req(router_name: str = "", **kw: object) -> RouteInput:
    return RouteInput(request_id="r1", candidates=CANDS, router=router_name, prompt="hi", **kw)  # type: ignore[arg-type]


async def test_static_decision_names_router_and_source() -> None:
    engine = make_engine(router("cheap", Cheapest()))
    d = await engine.route(req())
    assert (d.model, d.router, d.router_version, d.source) == ("b", "cheap", "v1", Source.STATIC)
    assert d.request_id == "r1"
    assert [s.model for s in d.scores] == ["a", "b"]
    assert d.latency_us >= 0


async def test_not_ready_before_routers_are_installed() -> None:
    engine = DecisionEngine(LimitsSettings(), Fallback(), ModelHealth(30))
    assert not engine.ready
    with pytest.raises(NotReady):
        await engine.route(req())


async def test_unknown_router_lists_the_loaded_ones() -> None:
    engine = make_engine(router("cheap", Cheapest()), router("fb", Fallback()))
    with pytest.raises(UnknownRouter, match="unknown router 'x'; loaded: cheap, fb"):
        await engine.route(req("x"))


@pytest.mark.parametrize("strategy", [Broken(), OffList()])
async def test_failing_strategy_degrades_to_fallback(strategy: object) -> None:
    engine = make_engine(router("bad", strategy))
    d = await engine.route(req())
    assert d.source == Source.FALLBACK
    assert d.model == "a"  # fallback: first healthy in request order
    assert d.reason.startswith("bad failed (")
    assert "secret" not in d.reason


async def test_blocking_strategy_times_out_into_fallback() -> None:
    with ThreadPoolExecutor(2) as pool:
        engine = make_engine(router("slow", Slow(delay_s=0.3)), executor=pool, timeout_s=0.02)
        d = await engine.route(req())
    assert d.source == Source.FALLBACK
    assert "strategy slow over 20 ms" in d.reason


async def test_a_router_can_have_its_own_offload_timeout() -> None:
    with ThreadPoolExecutor(2) as pool:
        engine = make_engine(
            router("patient", Slow(delay_s=0.1)),
            router("hasty", Slow(delay_s=0.1)),
            executor=pool,
            timeout_s=0.02,
            router_timeouts_s={"patient": 2.0},
        )
        patient = await engine.route(req("patient"))
        hasty = await engine.route(req("hasty"))
    assert patient.source == Source.STATIC and patient.reason == "slept 0.1s"
    assert hasty.source == Source.FALLBACK and "strategy slow over 20 ms" in hasty.reason


async def test_blocking_strategy_within_timeout_answers() -> None:
    with ThreadPoolExecutor(2) as pool:
        engine = make_engine(router("slow", Slow(delay_s=0.01)), executor=pool, timeout_s=1.0)
        d = await engine.route(req())
    assert (d.source, d.model, d.reason) == (Source.STATIC, "a", "slept 0.01s")


async def test_batch_is_answered_in_order_and_names_the_bad_index() -> None:
    engine = make_engine(router("cheap", Cheapest()))
    reqs = [RouteInput(request_id=f"r{i}", candidates=CANDS, prompt="p") for i in range(5)]
    out = await engine.route_batch(reqs)
    assert [d.request_id for d in out] == [f"r{i}" for i in range(5)]
    bad = [*reqs[:2], RouteInput(request_id="x", candidates=(), prompt="p")]
    with pytest.raises(InvalidRequest, match=r"requests\[2\]: no candidates"):
        await engine.route_batch(bad)


async def test_failed_outcome_benches_model_for_fallback() -> None:
    engine = make_engine(router("fb", Fallback()))
    assert (await engine.route(req())).model == "a"
    engine.record_outcome(Outcome("r1", "a", None, 10.0, 0.0, True, "fb", {}))
    assert (await engine.route(req())).model == "b"
    engine.record_outcome(Outcome("r2", "a", 1.0, 10.0, 0.0, False, "fb", {}))
    assert (await engine.route(req())).model == "b"  # a success does not lift a bench early


class _ConstFeaturizer:
    name = "const"
    sha256 = "f" * 64
    dim = 2
    batch_invariant = True
    input_kind = "text"

    def __init__(self) -> None:
        self.calls = 0

    def featurize(self, texts: object) -> np.ndarray:
        self.calls += 1
        return np.ones((1, 2), dtype=np.float32)


class _NeedsFeatures:
    kind = "learned-test"
    needs_features = True
    blocking = False

    def choose(self, request: RouteInput, features: object, health: object) -> object:
        from router_service.domain import Choice
        from router_service.strategies.base import onehot_scores

        assert isinstance(features, np.ndarray)
        name = request.candidates[int(features.sum()) % 2].name
        return Choice(name, onehot_scores(request.candidates, name), "test")


async def test_learned_router_gets_features_and_checks_input_kind() -> None:
    feat = _ConstFeaturizer()
    learned = LoadedRouter(
        name="ml",
        kind="t",
        version="1",
        strategy=_NeedsFeatures(),  # type: ignore[arg-type]
        featurizer=feat,
        sha256="ab" * 32,
    )
    engine = make_engine(learned)
    d = await engine.route(req())
    assert (d.source, d.model, feat.calls) == (Source.MODEL, "a", 1)
    with pytest.raises(InvalidRequest, match="needs text"):
        await engine.route(RouteInput(request_id="e", candidates=CANDS, embedding=(1.0, 2.0)))


async def test_degrade_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(router("bad", Broken()))
    with caplog.at_level("WARNING", logger="router_service.engine.engine"):
        for _ in range(50):
            assert (await engine.route(req())).source == Source.FALLBACK
    warnings = [r for r in caplog.records if "degraded to fallback" in r.getMessage()]
    assert len(warnings) == 1
    assert "(0 more since the last warning)" in warnings[0].getMessage()


async def test_a_measured_featurizer_sizes_its_router_budget() -> None:
    """A bundle that recorded its featurizer's p99 per prompt gets a budget of one full
    micro-batch of it (at least the default); a configured per-router limit wins."""
    from tests.support.learned import CountingFeaturizer, learned_router

    slow = CountingFeaturizer(delay_s=0.1)  # 100 ms per call, over the 50 ms default
    measured = dataclasses.replace(learned_router(slow), featurizer_cost_ms=5.0)
    with ThreadPoolExecutor(2) as pool:
        engine = make_engine(measured, executor=pool)
        assert engine.budget_s(measured) == pytest.approx(5.0 * 32 / 1000)  # max_batch 32
        assert (await engine.route(req())).source == Source.MODEL
        unmeasured = make_engine(learned_router(slow), executor=pool)
        assert unmeasured.budget_s(learned_router(slow)) == pytest.approx(0.05)
        degraded = await unmeasured.route(req())
        assert degraded.source == Source.FALLBACK and "over 50 ms" in degraded.reason
        pinned = make_engine(measured, executor=pool, router_timeouts_s={"ml": 0.02})
        assert pinned.budget_s(measured) == pytest.approx(0.02)
    cheap = dataclasses.replace(measured, featurizer_cost_ms=0.1)  # 3.2 ms: the default wins
    assert make_engine(cheap).budget_s(cheap) == pytest.approx(0.05)
