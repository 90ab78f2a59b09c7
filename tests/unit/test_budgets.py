"""The budget controller on synthetic decision streams: each kind of target is met over the
window (exactly, by mixing the two sides of a jump), λ is left alone until the window holds
min_samples, stays within its bounds, and follows the stream when it shifts."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from router_service.config import BudgetSettings, Settings
from router_service.domain import Candidate, CandidateScore, Decision, RouteInput, Source
from router_service.engine.budgets import BudgetController
from router_service.server import build_engine
from router_service.strategies.registry import StrategyRegistry

CHEAP = Candidate("cheap", 0.2, 0.2)
MID = Candidate("mid", 1.0, 1.0)
DEAR = Candidate("dear", 5.0, 5.0)


def _decision(gains: tuple[float, float], rng: random.Random) -> tuple[RouteInput, Decision]:
    """One request: the cheap model's predicted quality, and what each dearer model adds."""
    base = rng.uniform(0.3, 0.6)
    quality = (base, base + gains[0], base + gains[0] + gains[1])
    cands = (CHEAP, MID, DEAR)
    scores = tuple(
        CandidateScore(c.name, q, q, c.price) for c, q in zip(cands, quality, strict=True)
    )
    req = RouteInput(request_id="r", candidates=cands, prompt="p")
    return req, Decision("r", "cheap", scores, "knn", "1", Source.MODEL, "", 100)


def _stream(n: int, seed: int, lumpy: bool = False) -> list[tuple[RouteInput, Decision]]:
    rng = random.Random(seed)

    def gain() -> float:
        return rng.choice([0.0, 0.05, 0.1, 0.2]) if lumpy else rng.uniform(0.0, 0.25)

    return [_decision((gain(), gain()), rng) for _ in range(n)]


def _controller(**target: object) -> BudgetController:
    spec = BudgetSettings.model_validate(
        {"router": "knn", "window": 1000, "min_samples": 200, "update_every": 50, **target}
    )
    return BudgetController(spec, max_candidates=64, columns=2)  # widens to 3 on first use


def _feed(ctl: BudgetController, stream: list[tuple[RouteInput, Decision]]) -> None:
    for req, decision in stream:
        ctl.observe(req, decision)


def _mixed(ctl: BudgetController) -> float:
    """The held quantity over the window with the controller's mix of its two λs."""
    assert ctl.lam is not None
    return (1 - ctl.mix) * ctl.measure(ctl.lam) + ctl.mix * ctl.measure(ctl.alt)


@pytest.mark.parametrize("lumpy", [False, True])
@pytest.mark.parametrize(
    "target",
    [
        {"max_share": 0.1, "models": ["dear"]},
        {"max_share": 0.3, "models": ["mid", "dear"]},
        {"max_cost_per_1k_requests": 1.0, "tokens_per_request": 1000},
        {"min_quality": 0.85},
    ],
)
def test_each_target_is_met_over_the_window(target: dict[str, object], lumpy: bool) -> None:
    ctl = _controller(**target)
    _feed(ctl, _stream(2000, seed=1, lumpy=lumpy))
    assert ctl.lam is not None and 0.0 <= ctl.lam <= 10.0
    assert _mixed(ctl) == pytest.approx(ctl.target, abs=1e-6)
    jump = abs(ctl.measure(ctl.alt) - ctl.measure(ctl.lam))
    if not lumpy:  # smooth margins: the jump mixed across is one request's
        assert jump <= 0.005, jump


def test_cheaper_targets_need_larger_lambdas() -> None:
    lams = []
    for share in (0.4, 0.2, 0.05):
        ctl = _controller(max_share=share, models=["dear"])
        _feed(ctl, _stream(1500, seed=2))
        assert ctl.lam is not None
        lams.append(ctl.lam)
    assert lams == sorted(lams) and lams[0] < lams[-1]


def test_lambda_is_left_alone_until_the_window_holds_min_samples() -> None:
    ctl = _controller(max_share=0.1, models=["dear"])
    _feed(ctl, _stream(199, seed=3))
    assert ctl.lam is None and ctl.next_lambda() is None
    _feed(ctl, _stream(1, seed=4))  # the 200th, and a multiple of update_every
    assert ctl.lam is not None


def test_a_target_out_of_reach_stops_at_the_bound() -> None:
    """Even λ_max keeps the dear model in more than 0.1 % of decisions when its gain is huge."""
    ctl = _controller(max_share=0.001, models=["dear"], lambda_max=0.01)
    _feed(ctl, _stream(1000, seed=5))
    assert ctl.lam == 0.01 and ctl.mix == 0.0
    easy = _controller(max_share=0.5, models=["mid"])  # mid is rarely the best at λ 0
    _feed(easy, _stream(1000, seed=6))
    assert easy.lam == 0.0  # met without paying anything


def test_the_mix_is_spread_evenly() -> None:
    ctl = _controller(max_share=0.1, models=["dear"])
    _feed(ctl, _stream(1000, seed=7, lumpy=True))
    assert 0 < ctl.mix < 1
    picks = [ctl.next_lambda() for _ in range(1000)]
    assert abs(picks.count(ctl.alt) - ctl.mix * 1000) <= 1
    first_half = picks[:500].count(ctl.alt)
    assert abs(first_half - ctl.mix * 500) <= 1


def test_lambda_follows_a_shift_in_the_stream() -> None:
    ctl = _controller(max_share=0.2, models=["dear"])
    _feed(ctl, _stream(1000, seed=8))
    before = ctl.lam
    rng = random.Random(9)
    hard = [_decision((rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.6)), rng) for _ in range(1000)]
    _feed(ctl, hard)  # the dear model now adds much more: holding 20 % costs a larger λ
    assert before is not None and ctl.lam is not None and ctl.lam > before
    assert _mixed(ctl) == pytest.approx(0.2, abs=1e-6)


def test_each_tenant_gets_its_own_controller_up_to_a_bound(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        budgets=[
            {"router": "knn", "max_share": 0.2, "models": ["dear"]},
            {"router": "knn", "tenant": "acme", "min_quality": 0.9},
        ]
    )
    engine = build_engine(settings, StrategyRegistry(settings.strategies), None)
    acme = engine._budget("knn", "acme")
    assert acme is not None and acme.spec.min_quality == 0.9
    beta, gamma = engine._budget("knn", "beta"), engine._budget("knn", "gamma")
    assert beta is not None and gamma is not None and beta is not gamma
    assert beta.spec.max_share == 0.2 and engine._budget("knn", "beta") is beta
    assert engine._budget("other-router", "acme") is None
    for i in range(1500):  # tenants are labels callers choose: the controllers stay bounded
        engine._budget("knn", f"tenant-{i}")
    assert len(engine._controllers) == 1001
    assert engine._budget("knn", "tenant-1499") is engine._budget("knn", "tenant-1400")
