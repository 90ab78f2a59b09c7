"""Routing evaluation: policies, baselines, APGR (RouteLLM), cost–quality frontier."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from converters.cli import _frontier_line, _summary
from converters.datasets import SHIPPED_DATA as DATA
from converters.evaluation.policies import (
    CurvePoint,
    apgr,
    baselines,
    best_single_index,
    bootstrap_interval,
    choose_threshold,
    choose_utility,
    choose_utility_per_row,
    cost_quality_curve,
    default_lambdas,
    evaluate_choice,
    frontier_gain,
    frontier_shortfalls,
    lambda_for_budget,
    random_apgr,
)
from converters.evaluation.report import Target, calibrate_lambda, evaluate_predictions


def test_choose_utility_prefers_cheaper_on_ties_and_trades_cost() -> None:
    S = np.array([[0.5, 0.5, 0.2], [0.1, 0.9, 0.8]])
    cost = np.array([2.0, 1.0, 0.0])
    assert list(choose_utility(S, cost, 0.0)) == [1, 1]
    assert list(choose_utility(S, cost, 0.05)) == [1, 1]  # 0.9-0.05 > 0.8
    assert list(choose_utility(S, cost, 0.2)) == [1, 2]  # 0.5-0.2 > 0.2 but 0.9-0.2 < 0.8
    assert list(choose_utility(S, cost, 0.5)) == [2, 2]
    per_query = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert list(choose_utility(S, per_query, 0.0)) == [0, 1]
    with pytest.raises(ValueError, match="cost must be"):
        choose_utility(S, np.ones(4), 0.0)


def test_choose_utility_per_row_routes_each_row_at_its_own_lambda() -> None:
    S = np.array([[0.5, 0.9], [0.5, 0.9], [0.5, 0.9]])
    cost = np.array([0.0, 1.0])
    lams = np.array([0.0, 1.0, 0.1])  # the dear model's edge of 0.4 beats a cost of 0.1, not 1
    assert choose_utility_per_row(S, cost, lams).tolist() == [1, 0, 1]
    for lam in np.unique(lams):
        rows = lams == lam
        assert (
            choose_utility_per_row(S, cost, lams)[rows] == choose_utility(S[rows], cost, lam)
        ).all()
    with pytest.raises(ValueError, match="lams must have shape"):
        choose_utility_per_row(S, cost, [0.0])


def test_choose_threshold_takes_cheapest_good_enough() -> None:
    S = np.array([[0.9, 0.7, 0.3], [0.2, 0.1, 0.15]])
    cost = np.array([3.0, 2.0, 1.0])
    assert list(choose_threshold(S, cost, 0.6)) == [1, 0]  # row 2: none reaches, argmax
    assert list(choose_threshold(S, cost, 0.1)) == [2, 2]
    assert list(choose_threshold(S, cost, 0.95)) == [0, 0]


def test_evaluate_choice_values() -> None:
    Y = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 0.25], [1.0, 1.0]])
    res = evaluate_choice([0, 1, 1, 0], Y, np.array([1.0, 10.0]))
    assert res.avg_quality == pytest.approx((1 + 1 + 0.25 + 1) / 4)
    assert res.avg_cost == pytest.approx((1 + 10 + 10 + 1) / 4)
    assert res.call_share == (0.5, 0.5)
    measured = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    assert evaluate_choice([0, 1, 1, 0], Y, measured).avg_cost == pytest.approx(18 / 4)
    with pytest.raises(ValueError, match="choice must have shape"):
        evaluate_choice([0, 1], Y, np.ones(2))


def test_baselines() -> None:
    Y_train = np.array([[0.2, 0.6, 0.6], [0.4, 0.6, 0.6]])
    Y_test = np.array([[1.0, 0.0, 1.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    cost = np.array([1.0, 3.0, 2.0])
    assert best_single_index(Y_train, cost) == 2  # tie between 1 and 2 -> cheaper
    out = baselines(Y_train, Y_test, cost)
    assert out["best_single"].avg_quality == pytest.approx(0.5)
    assert out["best_single"].call_share == (0.0, 0.0, 1.0)
    assert out["oracle"].avg_quality == pytest.approx(0.5)
    assert out["oracle"].avg_cost == pytest.approx((1 + 2 + 1) / 3)  # ties -> cheapest
    assert out["random"].avg_quality == pytest.approx(Y_test.mean())
    assert out["random"].avg_cost == pytest.approx(2.0)


def test_apgr_matches_a_hand_computation() -> None:
    scores = np.array([0.4, 0.3, 0.2, 0.1])
    y_weak = np.array([0.0, 1.0, 1.0, 0.0])
    y_strong = np.array([1.0, 1.0, 0.0, 1.0])
    res = apgr(scores, y_weak, y_strong, num_results=2)
    assert res.points == ((0.0, 0.5), (0.5, 0.75), (1.0, 0.75))
    assert res.auc == pytest.approx(0.6875)
    assert (res.weak_auc, res.strong_auc) == pytest.approx((0.5, 0.75))
    assert res.apgr == pytest.approx(0.75)


def test_apgr_reference_routers() -> None:
    rng = np.random.default_rng(0)
    y_weak = (rng.random(4000) < 0.6).astype(float)
    y_strong = (rng.random(4000) < 0.8).astype(float)
    assert random_apgr(y_weak, y_strong, draws=20) == pytest.approx(0.5, abs=0.03)
    assert apgr(y_strong - y_weak, y_weak, y_strong).apgr > 1.0  # the oracle beats strong
    assert apgr(y_weak - y_strong, y_weak, y_strong).apgr < 0.0  # the anti-oracle
    with pytest.raises(ValueError, match="equal 1-D"):
        apgr(np.zeros(3), np.zeros(3), np.zeros(4))


def test_curve_is_monotone_and_budget_lambda() -> None:
    rng = np.random.default_rng(1)
    S = rng.random((300, 4))
    Y = np.clip(S + rng.normal(0, 0.2, S.shape), 0, 1)
    cost = np.array([0.1, 0.5, 1.0, 2.0])
    lambdas = default_lambdas(S, cost, n=25)
    assert lambdas[0] == 0.0 and np.all(np.diff(lambdas) > 0)
    curve = cost_quality_curve(S, Y, cost, lambdas)
    costs = [p.avg_cost for p in curve]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(costs))
    assert curve[0].avg_quality == pytest.approx(Y[np.arange(300), S.argmax(axis=1)].mean())
    assert curve[-1].avg_cost == pytest.approx(0.1)  # everything to the cheapest model
    point = lambda_for_budget(S, Y, cost, 0.8, lambdas)
    assert point is not None and point.avg_cost <= 0.8
    earlier = [p for p in curve if p.lam < point.lam]
    assert all(p.avg_cost > 0.8 for p in earlier)
    assert lambda_for_budget(S, Y, cost, 0.01, lambdas) is None


def test_frontier_gain_hand_computed() -> None:
    singles = [(0.0, 0.5), (1.0, 0.7)]
    above = [CurvePoint(0.0, 0.5, 0.8)]
    gain = frontier_gain(above, singles)
    assert gain.area == pytest.approx(0.125, abs=1e-5)
    assert gain.mean_gain == pytest.approx(0.125, abs=1e-5)
    assert gain.cost_range == (0.0, 1.0)
    below = [CurvePoint(0.0, 0.5, 0.55)]
    assert frontier_gain(below, singles).area == pytest.approx(0.0, abs=1e-12)
    # an expensive worse model does not lower the frontier: F = 0.5 flat, G rises from 0.5
    # to 0.6 over [0, 0.5] then stays flat -> 0.5 * 0.1 / 2 + 0.5 * 0.1
    flat = frontier_gain([CurvePoint(0.0, 0.5, 0.6)], [(0.0, 0.5), (1.0, 0.4)])
    assert flat.mean_gain == pytest.approx(0.075, abs=1e-5)


def test_frontier_shortfalls_name_the_points_below_mixing() -> None:
    singles = [(0.0, 0.5), (1.0, 0.7)]  # mixing the two reaches 0.6 at cost 0.5
    curve = [
        CurvePoint(10.0, 0.0, 0.5),  # the cheap model alone: on the frontier
        CurvePoint(1.0, 0.5, 0.65),  # above it
        CurvePoint(0.5, 0.5, 0.55),  # below it by 0.05
        CurvePoint(0.0, 1.0, 0.7),  # the dear model alone
    ]
    got = frontier_shortfalls(curve, singles)
    assert [(p.lam, round(f, 9)) for p, f in got] == [(0.5, 0.6)]


def test_the_report_says_where_a_router_falls_below_the_frontier_and_where_it_sends() -> None:
    rng = np.random.default_rng(3)
    Y = (rng.random((400, 2)) < [0.5, 0.8]).astype(np.float64)
    cost = np.array([0.1, 1.0])
    models = ("cheap", "dear")
    oracle = evaluate_predictions(Y, Y, Y, cost, lam=0.1, models=models)
    assert oracle["below_frontier"] == []
    assert _frontier_line(oracle).startswith("every λ")
    wrong = evaluate_predictions(1.0 - Y, Y, Y, cost, lam=0.1, models=models)  # inverted
    below = wrong["below_frontier"]
    assert below and all(p["avg_quality"] < p["frontier_quality"] for p in below)
    for point in below:
        assert sum(point["call_share"].values()) == pytest.approx(1.0)
        assert 0.0 < point["call_share"]["dear"] < 1.0  # a mix: neither single model alone
    line = _frontier_line(wrong)
    assert f"at {len(below)} of {len(wrong['curve'])} λ" in line and "dear" in line


def test_bootstrap_interval_covers_the_mean_and_narrows_with_rows() -> None:
    rng = np.random.default_rng(5)
    small = (rng.random(100) < 0.6).astype(np.float64)
    large = (rng.random(10_000) < 0.6).astype(np.float64)
    lo, hi = bootstrap_interval(lambda i: float(small[i].mean()), len(small))
    assert lo < small.mean() < hi
    # a 90 % interval of a proportion spans about 2 · 1.645 · sqrt(p(1 − p) / n)
    assert hi - lo == pytest.approx(2 * 1.645 * np.sqrt(0.24 / 100), rel=0.25)
    lo_l, hi_l = bootstrap_interval(lambda i: float(large[i].mean()), len(large), draws=300)
    assert hi_l - lo_l < (hi - lo) / 5  # 100× the rows: a tenth of the width
    assert bootstrap_interval(lambda i: float(small[i].mean()), 100) == (lo, hi)  # seeded
    with pytest.raises(ValueError, match="0 < level < 1"):
        bootstrap_interval(lambda i: 0.0, 10, level=1.0)


def test_the_report_gives_intervals_of_what_the_test_rows_can_tell_apart() -> None:
    rng = np.random.default_rng(4)
    Y = (rng.random((600, 2)) < [0.6, 0.8]).astype(np.float64)
    cost = np.array([0.1, 1.0])
    models = ("cheap", "dear")
    oracle = evaluate_predictions(Y, Y, Y, cost, lam=0.0, models=models)
    iv = oracle["intervals"]
    q = oracle["router"]["avg_quality"]
    assert iv["level"] == 0.9
    assert iv["router_quality"][0] < q < iv["router_quality"][1]
    gain = q - oracle["best_single"]["avg_quality"]
    assert 0.0 < iv["vs_best_single"][0] < gain < iv["vs_best_single"][1]  # the oracle beats it
    lo, hi = oracle["apgr"]["interval"]
    assert lo < oracle["apgr"]["apgr"] < hi
    # the best single model itself (the dear one everywhere): no difference on any resample
    same = evaluate_predictions(np.tile([0.0, 1.0], (600, 1)), Y, Y, cost, lam=0.0, models=models)
    assert same["intervals"]["vs_best_single"] == (0.0, 0.0)
    text = _summary(oracle, "usd")
    assert "90% bootstrap intervals over the test rows: router quality" in text
    assert f"{lo:.3f}–{hi:.3f}" in text


def test_real_baselines_match_the_readme() -> None:
    from converters.datasets import load_llmrouter, load_routellm

    llm = load_llmrouter(DATA / "llmrouter")
    cost = llm.price_vector()
    assert cost is not None
    train, test = llm.train(), llm.test()
    out = baselines(train.quality, test.quality, cost)
    assert out["best_single"].avg_quality == pytest.approx(0.563, abs=1e-3)
    assert out["best_single"].avg_cost == pytest.approx(0.9)
    assert out["oracle"].avg_quality == pytest.approx(0.743, abs=1e-3)
    assert out["random"].avg_quality == pytest.approx(0.376, abs=1e-3)
    assert out["oracle"].avg_cost < 0.5  # the cheapest of the tied best answers

    mmlu = load_routellm(DATA / "routellm", "mmlu").test()
    weak, strong = mmlu.quality[:, 0], mmlu.quality[:, 1]
    assert random_apgr(weak, strong, draws=20) == pytest.approx(0.5, abs=0.05)
    assert apgr(strong - weak, weak, strong).apgr > 1.0


def test_targets_parse_and_say_what_is_wrong() -> None:
    assert str(Target("quality-of:ollama/llama3:8b:0.98")) == "quality-of:ollama/llama3:8b:0.98"
    assert Target("quality-of:ollama/llama3:8b:0.98").model == "ollama/llama3:8b"
    assert str(Target("quality-share:0.97")) == "quality-share:0.97"
    for bad in ("cheap", "cost:", "quality-of:0.9", "quality-of:m:x"):
        with pytest.raises(ValueError, match="target"):
            Target(bad)


def test_quality_targets_take_the_cheapest_point_keeping_the_quality() -> None:
    # two models: "weak" is right on rows 0-1, "strong" on all four; the router knows it
    Y = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    S = np.array([[0.9, 0.95], [0.9, 0.95], [0.1, 0.9], [0.1, 0.9]])
    cost = np.array([1.0, 10.0])
    models = ["weak", "strong"]
    lam, table = calibrate_lambda(S, Y, Y, cost, Target("quality-of:strong:1.0"), models=models)
    kept = next(r for r in table if r["cost_weight"] == lam)
    assert kept["avg_quality"] == 1.0 and kept["avg_cost"] == pytest.approx(5.5)
    lam_w, _ = calibrate_lambda(S, Y, Y, cost, Target("quality-of:weak:1.0"), models=models)
    assert lam_w > lam  # weak's own quality is kept by always taking weak: the cheapest point
    with pytest.raises(ValueError, match="'gpt-9' is not one of the models judged here"):
        calibrate_lambda(S, Y, Y, cost, Target("quality-of:gpt-9:0.9"), models=models)
