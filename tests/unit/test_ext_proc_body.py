"""OpenAI-style bodies at the Envoy edge: which API, what text, rewriting, spoofed headers and
malformed bodies (whose messages never quote the body)."""

from __future__ import annotations

import json

import pytest

from router_service.errors import InvalidRequest
from router_service.surfaces.ext_proc_body import (
    MalformedBody,
    ParsedBody,
    api_kind,
    error_body,
    parse_body,
    rewrite_model,
    spoofed_headers,
)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/chat/completions", "chat"),
        ("/chat/completions/", "chat"),
        ("/openai/deployments/gpt/chat/completions?api-version=2024-10-21", "chat"),
        ("/v1/completions", "completions"),
        ("/v1/embeddings", "embeddings"),
        ("/v1/responses", "responses"),
        ("/v1/models", None),
        ("/v1/files", None),
        ("/v1/audio/transcriptions", None),
        ("/", None),
        ("", None),
    ],
)
def test_api_kind_from_the_path(path: str, kind: str | None) -> None:
    assert api_kind(path) == kind


# -- the text of each API -------------------------------------------------------------------
def test_chat_messages_become_turns() -> None:
    body = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at"},
                    {"type": "image_url", "image_url": {"url": "data:..."}},
                    {"type": "text", "text": "this"},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
    }
    parsed = parse_body(_json(body), "chat")
    assert parsed.model == "auto"
    assert parsed.prompt is None
    assert parsed.messages == (("system", "be brief"), ("user", "look at\nthis"), ("assistant", ""))
    assert parsed.has_text


@pytest.mark.parametrize(
    ("prompt", "text"),
    [("hello", "hello"), (["one", "two"], "one\ntwo"), ([1, 2, 3], None), ([[1, 2], [3]], None)],
)
def test_completions_prompt(prompt: object, text: str | None) -> None:
    parsed = parse_body(_json({"model": "m", "prompt": prompt}), "completions")
    assert parsed.prompt == text
    assert parsed.messages is None
    assert parsed.has_text is (text is not None)  # token ids carry no text to route on


@pytest.mark.parametrize(("value", "text"), [("one line", "one line"), (["a", "b"], "a\nb")])
def test_embeddings_input_is_the_prompt(value: object, text: str) -> None:
    assert parse_body(_json({"model": "m", "input": value}), "embeddings").prompt == text


def test_responses_instructions_and_input() -> None:
    parsed = parse_body(_json({"model": "m", "instructions": "terse", "input": "hi"}), "responses")
    assert parsed.messages == (("system", "terse"), ("user", "hi"))
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        {"role": "assistant", "content": "second"},
    ]
    parsed = parse_body(_json({"model": "m", "input": items}), "responses")
    assert parsed.messages == (("user", "first"), ("assistant", "second"))
    only_instructions = parse_body(_json({"model": "m", "instructions": "x"}), "responses")
    assert only_instructions.messages == (("system", "x"),)


def test_model_may_be_absent() -> None:
    assert parse_body(_json({"prompt": "x"}), "completions").model is None


# -- rewriting ------------------------------------------------------------------------------
def test_rewrite_model_keeps_every_other_field() -> None:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "héllo ✓"}],
        "temperature": 0.1,
        "stream": True,
        "n": 2,
        "extra": {"nested": [1, None, True]},
    }
    parsed = parse_body(_json(body), "chat")
    out = rewrite_model(parsed, "small")
    assert json.loads(out) == {**body, "model": "small"}
    assert "héllo ✓".encode() in out  # UTF-8, not \u escapes: content-length counts bytes
    assert b" " not in out.replace("héllo ✓".encode(), b"")  # compact


def test_rewrite_model_adds_a_missing_model() -> None:
    parsed = ParsedBody({"prompt": "x"}, None, prompt="x")
    assert json.loads(rewrite_model(parsed, "m")) == {"prompt": "x", "model": "m"}


# -- spoofed headers ------------------------------------------------------------------------
def test_spoofed_headers_are_every_routeiq_header() -> None:
    names = [
        ":path",
        "content-type",
        "x-routeiq-model",
        "X-RouteIQ-Route",
        "x-routeiq-",
        "x-routeiqx",
    ]
    assert spoofed_headers(names) == ["x-routeiq-model", "X-RouteIQ-Route", "x-routeiq-"]
    assert spoofed_headers([":method", "authorization", "x-request-id"]) == []


# -- malformed bodies -----------------------------------------------------------------------
SECRET = "kumquat-secret-29"


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        (b"", "chat", "body is empty: expected a JSON object"),
        (b"  \n", "chat", "body is empty"),
        (b"{" + SECRET.encode(), "chat", "body is not valid JSON: Expecting property name"),
        (b'{"model": "auto", "messages": [' + SECRET.encode(), "chat", "body is not valid JSON"),
        (b"\xff\xfe{}", "chat", "not valid UTF-8 JSON"),
        (b'{"messages": ' + b"[" * 100_000, "chat", "body is nested too deeply"),
        (b'{"model": NaN, "prompt": "x"}', "completions", "NaN is not a JSON number"),
        (b'{"prompt": "x", "temperature": -Infinity}', "completions", "-Infinity is not a JSON"),
        (b'{"prompt": "x", "temperature": 1e999}', "completions", "number out of range"),
        (_json([SECRET]), "chat", "body must be a JSON object, got an array"),
        (_json(SECRET), "chat", "body must be a JSON object, got a string"),
        (_json({"model": 4, "messages": []}), "chat", "'model' must be a string, got a number"),
        (_json({"model": "m"}), "chat", "'messages' must be an array, got null"),
        (_json({"model": "m", "messages": SECRET}), "chat", "'messages' must be an array"),
        (_json({"model": "m", "messages": []}), "chat", "'messages' is empty"),
        (_json({"messages": [SECRET]}), "chat", "messages[0] must be an object, got a string"),
        (_json({"messages": [{"role": 1}]}), "chat", "messages[0].role must be a string"),
        (
            _json({"messages": [{"role": "user", "content": 7}]}),
            "chat",
            "messages[0].content must be a string or an array of parts, got a number",
        ),
        (
            _json({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}),
            "chat",
            "messages[0].content[0].text must be a string",
        ),
        (
            _json({"messages": [{"role": "user", "content": [SECRET]}]}),
            "chat",
            "messages[0].content[0] must be an object",
        ),
        (_json({"model": "m"}), "completions", "'prompt' must be a string or an array"),
        (_json({"prompt": []}), "completions", "got an array (empty)"),
        (_json({"prompt": ["a", 1]}), "completions", "'prompt' must be a string"),
        (_json({"prompt": True}), "completions", "got a boolean"),
        (_json({"input": {"text": SECRET}}), "embeddings", "'input' must be a string"),
        (_json({"model": "m"}), "responses", "'input' must be a string or an array of items"),
        (_json({"input": 3}), "responses", "'input' must be a string or an array of items"),
        (_json({"input": [SECRET]}), "responses", "input[0] must be an object"),
        (_json({"instructions": 1, "input": "x"}), "responses", "'instructions' must be a string"),
    ],
)
def test_malformed_bodies_say_what_is_wrong_without_quoting(
    raw: bytes, kind: str, message: str
) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_body(raw, kind)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)
    assert isinstance(caught.value, InvalidRequest)  # one hierarchy: it is bad input


def test_error_body_is_an_openai_error() -> None:
    assert json.loads(error_body("body is empty")) == {
        "error": {
            "message": "body is empty",
            "type": "invalid_request_error",
            "param": None,
            "code": "routeiq_malformed_body",
        }
    }
