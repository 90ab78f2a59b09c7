"""Both edges route on the same text: one request body, read by the Envoy ext_proc body reader
and (in the shape LiteLLM hands a plug-in) by the LiteLLM plug-in, gives the same routing text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.litellm.deployments import set_input
from router_service.domain import RouteInput
from router_service.proto import pb
from router_service.routing_text import MalformedBody, RoutingText, routing_text
from router_service.surfaces.ext_proc_body import ApiKind, api_kind, parse_body

PARTS = [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {"url": "x"}}]
BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "plain"}]}, "plain"),
    (
        "/v1/chat/completions",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": PARTS},
            ]
        },
        "be brief\npart one",
    ),
    ("/v1/completions", {"prompt": "complete me"}, "complete me"),
    ("/v1/completions", {"prompt": ["one", "two"]}, "one\ntwo"),
    ("/v1/embeddings", {"input": "embed me"}, "embed me"),
    ("/v1/responses", {"input": "respond"}, "respond"),
    (
        "/v1/responses",
        {"instructions": "you are terse", "input": [{"role": "user", "content": "hello"}]},
        "you are terse\nhello",
    ),
    (
        "/v1/chat/completions",  # a lone surrogate: legal as a JSON escape, never as UTF-8
        {"messages": [{"role": "user", "content": "lone \ud800 surrogate"}]},
        "lone \ufffd surrogate",
    ),
    (
        "/v1/messages",
        {"system": "anthropic system", "messages": [{"role": "user", "content": PARTS[:1]}]},
        "anthropic system\npart one",
    ),
]


def _litellm_view(kind: ApiKind, body: dict[str, Any]) -> tuple[object, dict[str, Any]]:
    """What LiteLLM gives a plug-in for that body: chat messages, or the other fields."""
    if kind in ("chat", "messages"):
        return body["messages"], {k: v for k, v in body.items() if k != "messages"}
    return None, dict(body)


def _text(prompt: str | None, turns: Any) -> str:
    return RouteInput("r", (), prompt=prompt, messages=turns).text()


@pytest.mark.parametrize(
    ("path", "body", "want"), BODIES, ids=[f"{p}:{i}" for i, (p, _, _) in enumerate(BODIES)]
)
def test_both_edges_route_on_the_same_text(path: str, body: dict[str, Any], want: str) -> None:
    kind = api_kind(path)
    assert kind is not None
    envoy = parse_body(json.dumps({"model": "m", **body}).encode(), kind)
    request = pb.RouteRequest()
    messages, kwargs = _litellm_view(kind, body)
    assert set_input(request, messages, kwargs)
    assert request.SerializeToString()  # a protobuf string: valid UTF-8 only
    litellm_turns = tuple((t.role, t.content) for t in request.messages.turns) or None
    litellm = _text(request.prompt if request.HasField("prompt") else None, litellm_turns)
    assert _text(envoy.prompt, envoy.messages) == litellm == want


def test_token_ids_carry_no_text_and_bad_shapes_say_what_is_wrong() -> None:
    assert routing_text({"prompt": [[1, 2, 3]]}, "completions") == RoutingText()
    with pytest.raises(MalformedBody, match=r"'messages' must be an array, got a string"):
        routing_text({"messages": "hi"}, "chat")
    with pytest.raises(MalformedBody, match=r"messages\[0\]\.content\[0\] must be an object"):
        routing_text({"messages": [{"role": "user", "content": ["x"]}]}, "chat")
    assert not set_input(pb.RouteRequest(), None, {"prompt": [[1, 2]]})  # the plug-in: no text
