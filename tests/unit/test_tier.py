"""The tier router: the price ladder learned offline, and the policy over price positions."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

from converters.routers.tier import ladder_targets, price_ladder
from router_service.bundles.manifest import FeaturizerSpec, Manifest
from router_service.domain import Candidate, Choice, Policy, QualityBasis, RouteInput
from router_service.errors import StrategyError
from router_service.strategies.tier import PriceLadderRouter, ladder_positions, ladder_quality
from tests.support.learned import identity_session


def _healthy(model: str) -> bool:
    del model
    return True


def test_positions_are_log_price_places_from_cheapest_to_dearest() -> None:
    assert ladder_positions([0.6, 20.0]) == [0.0, 1.0]
    mid = ladder_positions([0.2, 2.0, 20.0])[1]
    assert 0.4 < mid < 0.5  # a tenfold step: about half of a hundredfold one (less the floor)
    assert ladder_positions([3.0, 3.0]) == [0.0, 0.0]
    free = ladder_positions([0.0, 1.0, 10.0])
    assert free[0] == 0.0 and all(math.isfinite(z) for z in free)
    # the unit does not matter: per 1M tokens or per token, the same places
    assert ladder_positions([0.15, 2.5, 3.0]) == pytest.approx(
        ladder_positions([0.15e-6, 2.5e-6, 3.0e-6])
    )


def test_quality_is_interpolated_between_rungs() -> None:
    out = np.array([[0.2, 0.5, 0.8], [0.9, 0.9, 0.9]])
    q = ladder_quality(out, [0.0, 0.5, 1.0], [0.0, 0.25, 1.0])
    assert q == pytest.approx(np.array([[0.2, 0.35, 0.8], [0.9, 0.9, 0.9]]))


def test_the_ladder_groups_prices_and_keeps_only_steps_up() -> None:
    # columns: cheap-good, cheap-bad (same price band), mid-worse, dear-best
    prices = [0.1, 0.2, 1.0, 5.0]
    y = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]])
    ladder = price_ladder(prices, y, margin=0.1)
    # 0.1 and 0.2 share a band (within 2.5x); the 1.0 model is no better than the cheap band
    assert ladder.members == ((0,), (3,))
    assert ladder.representatives == (0, 3)
    assert ladder.positions == (0.0, 1.0)
    assert ladder_targets(y, ladder) == pytest.approx(np.array([[1, 1], [0, 1], [1, 1]]))


def test_a_ladder_needs_a_dearer_model_that_is_better() -> None:
    with pytest.raises(ValueError, match="at least two prices"):
        price_ladder([1.0, 10.0], np.array([[1.0, 0.0], [1.0, 1.0]]))


def _router(outputs: list[float], ladder: list[float], weight: float = 0.0) -> Routed:
    """A router whose graph passes the feature row through, and the row it predicts."""
    router = PriceLadderRouter(
        "tier",
        session=identity_session(len(outputs)),
        input_name="features",
        output_name="quality",
        ladder=ladder,
        model_prices={"known-cheap": 0.1},
        default_cost_weight=weight,
    )
    return Routed(router, np.array([outputs], dtype=np.float32))


class Routed(NamedTuple):
    router: PriceLadderRouter
    row: npt.NDArray[np.float32]

    def choose(self, *cands: Candidate, **policy: float) -> Choice:
        req = RouteInput("r", tuple(cands), prompt="p", policy=Policy(**policy))
        return self.router.choose_scored(req, self.router.predict(self.row), _healthy)


MINI = Candidate("openai/gpt-4o-mini", 0.15, 0.6)
FOUR_O = Candidate("openai/gpt-4o", 2.5, 10.0)
SONNET = Candidate("anthropic/claude-sonnet-4-5", 3.0, 15.0)


def test_unknown_models_are_routed_by_price_and_lambda_weighs_positions() -> None:
    r = _router([0.5, 0.8], [0.0, 1.0])  # going to the top gains 0.3
    assert r.choose(MINI, FOUR_O, SONNET, cost_weight=0.0).model == SONNET.name
    assert r.choose(MINI, FOUR_O, SONNET, cost_weight=0.29).model == SONNET.name
    choice = r.choose(MINI, FOUR_O, SONNET, cost_weight=0.31)
    assert choice.model == MINI.name and "price position" in choice.reason
    # the same λ decides the same way whatever the price scale
    cheap, dear = Candidate("a", 0.001, 0.001), Candidate("b", 100.0, 100.0)
    assert r.choose(cheap, dear, cost_weight=0.31).model == "a"


def test_scores_report_price_and_interpolated_quality() -> None:
    choice = _router([0.5, 0.8], [0.0, 1.0], weight=0.1).choose(MINI, FOUR_O)
    by_name = {s.model: s for s in choice.scores}
    assert by_name[MINI.name].quality == pytest.approx(0.5)
    assert by_name[FOUR_O.name].quality == pytest.approx(0.8)
    assert by_name[FOUR_O.name].cost == pytest.approx(6.25)
    assert by_name[FOUR_O.name].score == pytest.approx(0.8 - 0.1)  # the default λ
    assert {s.basis for s in choice.scores} == {QualityBasis.PRICE_LADDER}


def test_min_quality_takes_the_cheapest_predicted_to_reach_it() -> None:
    r = _router([0.5, 0.7, 0.8], [0.0, 0.5, 1.0])
    low, mid, high = (Candidate(n, p, p) for n, p in (("low", 0.2), ("mid", 2.0), ("high", 20.0)))
    assert r.choose(low, mid, high, min_quality=0.65).model == "mid"
    assert r.choose(low, mid, high, min_quality=0.4).model == "low"
    choice = r.choose(low, mid, high, min_quality=0.95)
    assert choice.model == "high" and "none predicted" in choice.reason


def test_prices_come_from_the_request_else_the_bundle_and_unpriced_are_not_scored() -> None:
    r = _router([0.5, 0.8], [0.0, 1.0])
    unpriced = Candidate("mystery")
    known = Candidate("known-cheap")  # the bundle prices it at 0.1
    choice = r.choose(unpriced, known, FOUR_O, cost_weight=0.0)
    assert choice.model == FOUR_O.name
    scores = {s.model: s for s in choice.scores}
    assert scores["mystery"].score == -math.inf
    assert scores["known-cheap"].cost == pytest.approx(0.1)
    with pytest.raises(StrategyError, match="no candidate has a price"):
        r.choose(unpriced, Candidate("other"))


def test_unavailable_candidates_and_missing_predictions() -> None:
    down = Candidate(SONNET.name, 3.0, 15.0, unavailable=True)
    assert _router([0.5, 0.8], [0.0, 1.0]).choose(MINI, down, cost_weight=0.0).model == MINI.name
    with pytest.raises(StrategyError, match="no prediction"):
        _router([math.nan, 0.8], [0.0, 1.0]).choose(MINI, SONNET)


def test_the_manifest_checks_the_ladder() -> None:
    base = {
        "name": "t",
        "version": "1",
        "router_kind": "tier",
        "models": ["a", "b"],
        "model_costs": {"a": 1.0, "b": 2.0},
        "featurizer": FeaturizerSpec(kind="embedding", dim=2).model_dump(),
        "files": {"router.onnx": {"sha256": "0" * 64, "bytes": 1}},
    }
    ok = Manifest.model_validate(base | {"outputs": "ladder_quality", "ladder": [0.0, 0.4, 1.0]})
    assert ok.ladder == [0.0, 0.4, 1.0]
    for bad in ([0.0, 0.5], [0.0, 0.7, 0.6, 1.0], [1.0]):
        with pytest.raises(ValueError, match="ladder must increase"):
            Manifest.model_validate(base | {"outputs": "ladder_quality", "ladder": bad})
    with pytest.raises(ValueError, match="ladder is required"):
        Manifest.model_validate(base | {"outputs": "ladder_quality"})
    with pytest.raises(ValueError, match="ladder is required"):
        Manifest.model_validate(base | {"ladder": [0.0, 1.0]})
