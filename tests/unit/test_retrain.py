"""The closed loop's parts: exploration and its logged propensities, reading and joining the
telemetry, learning from partial feedback, and judging a policy on logged feedback."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from converters.datasets.telemetry import (
    NO_PROMPT,
    join_feedback,
    load_prompt_store,
    read_events,
)
from converters.evaluation import off_policy
from converters.retrain import verdict
from converters.routers import train_masked
from router_service.config import Settings
from router_service.domain import Candidate, CandidateScore, Decision, RouteInput, Source
from router_service.errors import ConfigError
from router_service.server import build_engine
from router_service.strategies.registry import StrategyRegistry
from router_service.telemetry.events import prompt_hash

MODELS = ["a", "b", "c", "d"]


def _decision(source: Source = Source.MODEL, scores: list[float] | None = None) -> Decision:
    values = scores or [0.9, 0.5, 0.4, 0.3]
    return Decision(
        request_id="r",
        model="a",
        scores=tuple(CandidateScore(m, s) for m, s in zip(MODELS, values, strict=True)),
        router="knn",
        router_version="1",
        source=source,
        reason="best",
        latency_us=10,
    )


def _req(*unavailable: str) -> RouteInput:
    return RouteInput(
        request_id="r",
        candidates=tuple(Candidate(m, unavailable=m in unavailable) for m in MODELS),
        prompt="hi",
    )


def test_exploration_picks_uniformly_and_logs_the_propensity(
    make_settings: Callable[..., Settings],
) -> None:
    engine = build_engine(make_settings(exploration={"knn": 0.4}), StrategyRegistry({}), None)
    engine._random.seed(3)
    picks: Counter[str] = Counter()
    for _ in range(20_000):
        d = engine._explored(_req(), _decision())
        picks[d.model] += 1
        assert d.propensity == pytest.approx(0.6 + 0.1 if d.model == "a" else 0.1)
    assert picks["a"] / 20_000 == pytest.approx(0.7, abs=0.015)
    for m in "bcd":
        assert picks[m] / 20_000 == pytest.approx(0.1, abs=0.01)
    # only usable candidates the router scored; fallbacks and other routers are left alone
    scores = [0.9, 0.5, -math.inf, 0.3]
    seen = {engine._explored(_req("b"), _decision(scores=scores)).model for _ in range(500)}
    assert seen == {"a", "d"}
    fallback = engine._explored(_req(), _decision(Source.FALLBACK))
    assert fallback.model == "a" and fallback.propensity == 1.0
    other = engine._explored(_req(), dataclasses.replace(_decision(), router="x"))
    assert other.propensity == 1.0


def test_exploration_share_must_be_a_probability(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match=r"exploration shares must be in \(0, 1\]"):
        make_settings(exploration={"knn": 1.5})


def _event_lines(n: int, rng: np.random.Generator, explore: float) -> list[dict[str, Any]]:
    """A logging router that always prefers "a" and explores uniformly over a, b; the true
    quality of b is 1 on prompts with "hard", of a 1 on the others."""
    lines: list[dict[str, Any]] = []
    for i in range(n):
        hard = i % 2 == 0
        model = ("a", "b")[int(rng.integers(2))] if rng.random() < explore else "a"
        p = explore / 2 + (1 - explore) * (model == "a")
        prompt = f"{'hard' if hard else 'easy'} question {i}"
        lines.append(
            {
                "type": "decision",
                "ts": 1000.0 + i,
                "request_id": f"r{i}",
                "router": "knn",
                "version": "1",
                "side": "champion",
                "model": model,
                "source": "MODEL",
                "candidates": ["a", "b"],
                "input_price": [1.0, 3.0],
                "output_price": [1.0, 3.0],
                "quality": [0.9, 0.5],
                "score": [0.8, 0.2],
                "propensity": p,
                "prompt": prompt,
            }
        )
        truth = float(hard) if model == "b" else float(not hard)
        lines.append({"type": "outcome", "request_id": f"r{i}", "model": model, "quality": truth})
    return lines


def test_telemetry_files_with_rotations_join_and_say_what_they_left_out(tmp_path: Path) -> None:
    lines = _event_lines(40, np.random.default_rng(0), 0.5)
    extra = [
        {
            "type": "decision",
            "request_id": "r-none",
            "router": "knn",
            "source": "MODEL",
            "model": "a",
            "candidates": ["a"],
            "ts": 1.0,
        },
        {
            "type": "decision",
            "request_id": "r-fb",
            "router": "knn",
            "source": "FALLBACK",
            "model": "a",
            "candidates": ["a"],
            "ts": 1.0,
        },
        {"type": "outcome", "request_id": "r-fb", "model": "a", "quality": 1.0},
        {
            "type": "decision",
            "request_id": "r-other",
            "router": "knn",
            "source": "MODEL",
            "model": "a",
            "candidates": ["a"],
            "ts": 1.0,
        },
        {"type": "outcome", "request_id": "r-other", "model": "b", "quality": 1.0},
    ]
    docs = lines + extra
    # oldest in events.jsonl.2, then .1, then the live file; the outcome file is not events
    (tmp_path / "events.jsonl.2").write_text("\n".join(json.dumps(d) for d in docs[:30]) + "\n")
    (tmp_path / "events.jsonl.1").write_text("\n".join(json.dumps(d) for d in docs[30:60]) + "\n")
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(d) for d in docs[60:]) + "\n")
    (tmp_path / "outcomes.jsonl").write_text(json.dumps({"request_id": "r1", "quality": 0}) + "\n")
    for source in (tmp_path, tmp_path / "events.jsonl"):
        assert len(list(read_events(source))) == len(docs)
    # the service appending to the live file: its last line is not whole yet, and waits
    with (tmp_path / "events.jsonl").open("a") as fh:
        fh.write(json.dumps(extra[0])[:40])
    assert len(list(read_events(tmp_path))) == len(docs)
    fb, stats = join_feedback(read_events(tmp_path))
    assert stats.joined == fb.n == 40 and fb.router == "knn" and fb.models == ("a", "b")
    assert stats.dropped == {
        "no_outcome": 1,
        "not_a_router_decision": 1,
        "outcome_for_another_model": 1,
    }
    assert list(fb.ts) == sorted(fb.ts) and fb.price[0].tolist() == [1.0, 3.0]
    early, late = fb.time_split(0.25)
    assert (early.n, late.n) == (30, 10) and early.ts.max() < late.ts.min()
    with pytest.raises(ValueError, match="no such telemetry file"):
        list(read_events(tmp_path / "missing.jsonl"))


def test_prompts_come_from_the_events_or_from_your_own_store_by_keyed_hash(
    tmp_path: Path,
) -> None:
    key = b"k" * 32
    lines = _event_lines(10, np.random.default_rng(0), 0.5)
    own = []
    for d in lines:
        if d["type"] == "decision":
            own.append(d.pop("prompt"))
            d["prompt_hash"] = prompt_hash(key, own[-1])
    with pytest.raises(ValueError, match=r"no_prompt \(telemetry.retain_prompts off"):
        join_feedback(lines)
    store = tmp_path / "prompts.jsonl"
    # the application's own log: the same prompts, spaced and cased its own way, and others
    texts = [{"prompt": f"  {p.upper()} "} for p in own[:7]] + [{"prompt": "unrelated"}]
    store.write_text("\n".join(json.dumps(t) for t in texts) + "\n")
    fb, stats = join_feedback(lines, prompts=load_prompt_store(store, key))
    assert stats.prompts_from_store == 7 and fb.n == 7
    assert stats.dropped == {NO_PROMPT: 3}
    wrong_key = load_prompt_store(store, b"x" * 32)
    with pytest.raises(ValueError, match="no usable rows"):
        join_feedback(lines, prompts=wrong_key)


def test_snips_recovers_true_policy_values_from_explored_logs() -> None:
    fb, _ = join_feedback(_event_lines(20_000, np.random.default_rng(1), 0.3))
    hard = np.array(["hard" in p for p in fb.prompts])
    oracle = np.where(hard, 1, 0)  # b on hard prompts, a on easy ones: quality 1
    always_a = np.zeros(fb.n, dtype=np.int64)  # quality 0.5
    assert off_policy.value(oracle, fb).quality == pytest.approx(1.0)
    assert off_policy.value(always_a, fb).quality == pytest.approx(0.5, abs=0.02)
    # the naive mean of the log is biased toward what the logger chose; SNIPS is not
    assert off_policy.logged_greedy(fb).tolist() == always_a.tolist()
    cmp = off_policy.compare(oracle, always_a, fb)
    assert cmp["quality_gain"] == pytest.approx(0.5, abs=0.02)
    assert cmp["quality_gain_lower95"] > 0.4 and cmp["cost_ratio"] == pytest.approx(2.0, abs=0.05)


def test_partial_feedback_fits_each_model_on_its_own_rows() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4000, 3)).astype(np.float32)
    truth = np.stack([(X[:, 0] > 0), (X[:, 0] <= 0)], axis=1).astype(np.float64)
    chosen = rng.integers(2, size=4000)
    seen = np.zeros_like(truth)
    seen[np.arange(4000), chosen] = 1.0
    Y = np.where(seen > 0, truth, 0.0)  # what was not seen is not known (0 here, masked)
    for kind in ("logistic", "linear"):
        trained = (
            train_masked(kind, X, Y, seen, seen, C=10.0)
            if kind == "logistic"
            else (train_masked(kind, X, Y, seen, seen, alpha=1.0))
        )
        S = trained.predict(X)
        assert np.mean(S.argmax(axis=1) == truth.argmax(axis=1)) > 0.9, kind
    with pytest.raises(ValueError, match="cannot learn from partial feedback"):
        train_masked("knn", X, Y, seen, seen)
    with pytest.raises(ValueError, match="no observed row"):
        train_masked("logistic", X, Y, np.zeros_like(seen), seen)


@pytest.mark.parametrize(
    ("gain", "low", "ratio", "better", "why"),
    [
        (0.05, 0.02, 0.9, True, "better"),
        (0.005, 0.001, 0.9, False, "below the margin"),
        (0.05, -0.01, 0.9, False, "within noise"),
        (0.05, 0.02, 1.5, False, "costs more"),
    ],
)
def test_the_verdict_says_why(
    gain: float, low: float, ratio: float, better: bool, why: str
) -> None:
    evaluation = {
        "rows": 500,
        "challenger": {"quality": 0.5 + gain},
        "champion": {"quality": 0.5},
        "comparison": {
            "quality_gain": gain,
            "quality_gain_se": 0.01,
            "quality_gain_lower95": low,
            "cost_ratio": ratio,
        },
    }
    ok, sentence = verdict(evaluation, margin=0.01, cost_tolerance=0.02)
    assert ok is better and why in sentence and "500 held-out requests" in sentence
