from collections import Counter

import pytest

from router_service.domain import Candidate, RouteInput
from router_service.engine.health import ModelHealth
from router_service.errors import ConfigError
from router_service.strategies.registry import StrategyRegistry
from router_service.strategies.static import Cheapest, Fallback, Fixed, RoundRobin, Weighted


def healthy(_: str) -> bool:
    return True


def req(*cands: Candidate, request_id: str = "") -> RouteInput:
    return RouteInput(request_id=request_id, candidates=cands, prompt="p")


A, B, C = Candidate("a", 1.0, 3.0), Candidate("b", 0.1, 0.3), Candidate("c")


def test_round_robin_cycles_and_skips_unavailable() -> None:
    rr = RoundRobin()
    assert [rr.choose(req(A, B, C), None, healthy).model for _ in range(6)] == list("abcabc")
    down = Candidate("b", unavailable=True)
    picks = {rr.choose(req(A, down, C), None, healthy).model for _ in range(4)}
    assert picks == {"a", "c"}


def test_weighted_follows_weights_and_is_sticky_per_request_id() -> None:
    w = Weighted(weights={"a": 3, "b": 1})
    counts = Counter(w.choose(req(A, B), None, healthy).model for _ in range(4000))
    assert 0.70 < counts["a"] / 4000 < 0.80
    sticky = {w.choose(req(A, B, request_id="req-42"), None, healthy).model for _ in range(20)}
    assert len(sticky) == 1
    choice = w.choose(req(A, B), None, healthy)
    assert [s.score for s in choice.scores] == [0.75, 0.25]


def test_weighted_zero_weight_never_chosen() -> None:
    w = Weighted(weights={"a": 0, "b": 1})
    assert {w.choose(req(A, B), None, healthy).model for _ in range(200)} == {"b"}


def test_fallback_takes_first_healthy_in_configured_order() -> None:
    fb = Fallback(order=["c", "a"])
    assert fb.choose(req(A, B, C), None, healthy).model == "c"
    health = ModelHealth(cooldown_s=60)
    health.mark_failed("", "c")
    choice = fb.choose(req(A, B, C), None, health.view(""))
    assert choice.model == "a"
    assert "skipped unhealthy" in choice.reason


def test_fallback_with_nothing_healthy_still_answers() -> None:
    health = ModelHealth(cooldown_s=60)
    for name in "ab":
        health.mark_failed("", name)
    choice = Fallback().choose(req(A, B), None, health.view(""))
    assert choice.model == "a"
    assert "no healthy candidate" in choice.reason


def test_model_health_recovers_after_cooldown() -> None:
    now = [100.0]
    health = ModelHealth(cooldown_s=5, clock=lambda: now[0])
    health.mark_failed("", "a")
    assert not health.view("")("a")
    now[0] += 5.1
    assert health.view("")("a")


def test_model_health_is_scoped_by_tenant() -> None:
    health = ModelHealth(cooldown_s=60)
    health.mark_failed("acme", "a")
    assert not health.healthy("acme", "a")
    assert health.healthy("", "a") and health.healthy("globex", "a")
    assert health.view("globex")("a") and not health.view("acme")("a")


def test_model_health_expires_on_a_schedule_and_is_bounded() -> None:
    """Benched names are swept once expired even if nobody looks them up, and never more
    than ``max_entries`` are kept (the ones closest to expiry go first)."""
    now = [0.0]
    health = ModelHealth(cooldown_s=10, max_entries=3, clock=lambda: now[0])
    for i in range(5):
        now[0] += 1
        health.mark_failed("", f"m{i}")
    assert len(health) == 3
    assert health.healthy("", "m0") and health.healthy("", "m1")  # dropped as the oldest
    assert not health.healthy("", "m4")
    now[0] += 10.5  # m2..m4 have expired
    health.mark_failed("t", "fresh")
    assert len(health) == 1


def test_cheapest_uses_mean_price_and_ranks_unknown_last() -> None:
    choice = Cheapest().choose(req(C, A, B), None, healthy)
    assert choice.model == "b"
    assert choice.scores[2].cost == pytest.approx(0.2)
    assert Cheapest().choose(req(C, Candidate("d")), None, healthy).model == "c"


def test_fixed_ranking_picks_highest_available() -> None:
    fixed = Fixed(ranking={"a": 1200, "b": 1100, "c": 1000})
    assert fixed.choose(req(C, B, A), None, healthy).model == "a"
    down = Candidate("a", unavailable=True)
    assert fixed.choose(req(C, B, down), None, healthy).model == "b"


def test_registry_builds_kinds_and_rejects_bad_params() -> None:
    reg = StrategyRegistry(entry_points_=False)
    assert reg.kinds() == ["cheapest", "fallback", "fixed", "round-robin", "weighted"]
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        reg.create("nope", {})
    with pytest.raises(ConfigError, match="bad params"):
        reg.create("cheapest", {"x": 1})
    with pytest.raises(ConfigError, match=r"'weights\.a' must be a number"):
        reg.create("weighted", {"weights": {"a": "heavy"}})


def test_registry_loads_custom_strategy_from_dotted_path() -> None:
    reg = StrategyRegistry(
        {"always-last": "tests.support.strategies:AlwaysLast"}, entry_points_=False
    )
    strategy = reg.create("always-last", {})
    assert strategy.choose(req(A, B, C), None, healthy).model == "c"
    with pytest.raises(ConfigError, match="cannot load strategy"):
        StrategyRegistry({"x": "tests.support.strategies:Missing"}, entry_points_=False)
