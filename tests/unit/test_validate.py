import math

import pytest

from router_service.config import LimitsSettings
from router_service.domain import Candidate, Outcome, Policy, RouteInput
from router_service.engine.validate import validate_outcome, validate_route
from router_service.errors import InvalidRequest

LIMITS = LimitsSettings(
    max_prompt_chars=50, max_candidates=3, max_embedding_dim=4, max_messages=2, max_labels=1
)
AB = (Candidate("a"), Candidate("b"))


def req(**kw: object) -> RouteInput:
    base: dict[str, object] = {"request_id": "r1", "candidates": AB, "prompt": "hello"}
    base.update(kw)
    return RouteInput(**base)  # type: ignore[arg-type]


def test_valid_request_passes() -> None:
    validate_route(req(), LIMITS)
    validate_route(req(prompt=None, messages=(("user", "hi"),)), LIMITS)
    validate_route(req(prompt=None, embedding=(0.1, 0.2)), LIMITS)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"candidates": ()}, "no candidates: give at least one model"),
        ({"candidates": (Candidate("a"),) * 4}, "4 candidates, over the limit of 3"),
        ({"candidates": (Candidate("a"), Candidate("a"))}, "candidate 'a' is listed twice"),
        ({"candidates": (Candidate(" "),)}, r"candidates\[0\] has an empty name"),
        ({"candidates": (Candidate("a", input_price=-1.0),)}, "input_price_per_mtok is -1.0"),
        ({"candidates": (Candidate("a", output_price=math.nan),)}, "output_price_per_mtok is nan"),
        ({"prompt": None}, "no input: set one of 'prompt', 'messages' or 'embedding'"),
        ({"prompt": "   "}, "empty prompt"),
        ({"prompt": "x" * 51}, "prompt is 51 characters, over the limit of 50"),
        ({"prompt": None, "messages": ()}, "'messages' has no turns"),
        ({"prompt": None, "messages": (("user", "a"),) * 3}, "3 turns, over the limit of 2"),
        ({"prompt": None, "messages": (("user", " "),)}, "empty prompt: no turn"),
        ({"prompt": None, "messages": (("user", "x" * 30),) * 2}, "60 characters in all"),
        ({"prompt": None, "embedding": ()}, "'embedding' has no values"),
        ({"prompt": None, "embedding": (0.0,) * 5}, "5 values, over the limit of 4"),
        ({"prompt": None, "embedding": (0.1, math.nan)}, r"embedding\[1\] is nan"),
        ({"prompt": None, "embedding": (math.inf,)}, r"embedding\[0\] is inf"),
        ({"policy": Policy(cost_weight=-1)}, "policy.cost_weight is -1"),
        ({"policy": Policy(min_quality=1.5)}, "policy.min_quality is 1.5"),
        ({"labels": {"a": "1", "b": "2"}}, "2 labels, over the limit of 1"),
    ],
)
def test_bad_input_is_rejected_with_a_message(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_route(req(**kw), LIMITS)


def test_messages_never_echo_prompt_text() -> None:
    secret = "my-secret-prompt-" + "x" * 60
    with pytest.raises(InvalidRequest) as info:
        validate_route(req(prompt=secret), LIMITS)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"request_id": ""}, "needs the 'request_id'"),
        ({"model": ""}, "needs the 'model'"),
        ({"quality": 2.0}, "quality is 2.0"),
        ({"latency_ms": -1.0}, "latency_ms is -1.0"),
        ({"cost_usd": math.inf}, "cost_usd is inf"),
        # every field is bounded: a 100,000-character model name was once accepted
        ({"model": "m" * 100_000}, "model is over the limit of 256 characters"),
        ({"request_id": "r" * 257}, "request_id is over the limit of 256"),
        ({"router": "x" * 257}, "router is over the limit of 256"),
        ({"labels": {f"k{i}": "v" for i in range(33)}}, "33 labels, over the limit of 32"),
        ({"labels": {"tenant": "t" * 257}}, "label 'tenant' is over the limit of 256"),
    ],
)
def test_bad_outcome_is_rejected(kw: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "request_id": "r",
        "model": "a",
        "quality": 0.5,
        "latency_ms": 1.0,
        "cost_usd": 0.0,
        "failed": False,
        "router": "",
        "labels": {},
    }
    base.update(kw)
    with pytest.raises(InvalidRequest, match=message):
        validate_outcome(Outcome(**base), LimitsSettings())  # type: ignore[arg-type]
