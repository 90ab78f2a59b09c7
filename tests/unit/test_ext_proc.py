"""The ext_proc servicer driven in-process (no sockets) with a real decision engine: the
message-by-message contract with Envoy, route matching, pass-through and rejection."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from router_service._proto.envoy.config.core.v3 import base_pb2 as core
from router_service._proto.envoy.extensions.filters.http.ext_proc.v3 import (
    processing_mode_pb2 as modes,
)
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from router_service.bundles.registry import load_routers
from router_service.config import Settings
from router_service.errors import ConfigError
from router_service.server import build_engine
from router_service.strategies.registry import StrategyRegistry
from router_service.surfaces.ext_proc import ExtProcServicer

SECRET = "persimmon-secret-55"
ROUTERS = [
    {"name": "by-keyword", "strategy": "keyword", "params": {"keywords": {"hard": "big"}}},
    {"name": "cheapest", "strategy": "cheapest"},
]
PRICED = [{"name": "big", "input_price_per_mtok": 9}, {"name": "small", "input_price_per_mtok": 1}]
ROUTES = [
    {"name": "cheap", "match": {"model": "cheap"}, "router": "cheapest", "candidates": PRICED},
    {
        "name": "chat",
        "match": {"route": "openai", "path_prefix": "/v1/chat/"},
        "candidates": ["small", "big"],
    },
    {
        "name": "embed",
        "match": {"path_prefix": "/v1/embeddings"},
        "candidates": ["e1", "e2"],
        "router": "cheapest",
    },
]


class Ctx:
    """The part of ``grpc.aio.ServicerContext`` the stream handler uses: its metadata."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**ext_proc: Any) -> Settings:
        return make_settings(
            strategies={"keyword": "tests.support.envoy_strategies:Keyword"},
            routers=ROUTERS,
            default_router="cheapest",
            ext_proc={"router": "by-keyword", "routes": ROUTES, **ext_proc},
        )

    return make


def servicer_for(settings: Settings, *, install: bool = True) -> ExtProcServicer:
    registry = StrategyRegistry(settings.strategies)
    engine = build_engine(settings, registry, None)
    if install:
        engine.install(load_routers(settings, registry))
    return ExtProcServicer(engine, settings.ext_proc)


def headers(path: str, *extra: tuple[str, str], eos: bool = False) -> Any:
    pairs = [(":method", "POST"), (":path", path), ("x-request-id", "r-1"), *extra]
    header_map = core.HeaderMap(
        headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]
    )
    return ep.ProcessingRequest(
        request_headers=ep.HttpHeaders(headers=header_map, end_of_stream=eos)
    )


def body(payload: object) -> Any:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=raw, end_of_stream=True))


async def exchange(servicer: ExtProcServicer, *messages: Any, route: str = "openai") -> list[Any]:
    """Envoy's side of one stream: send ``messages``, collect one answer per message."""
    sent: list[Any] = []

    async def requests() -> AsyncIterator[Any]:
        for message in messages:
            sent.append(message)
            yield message

    ctx = Ctx((("x-routeiq-route", route),) if route else ())
    answers = [a async for a in servicer.Process(requests(), ctx)]  # type: ignore[arg-type]
    assert sent == list(messages)
    return answers


def chat(prompt: str, model: str = "auto") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def set_headers(reply: Any) -> dict[str, str]:
    mutation = reply.request_body.response.header_mutation
    for option in mutation.set_headers:
        assert option.append_action == core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    return {o.header.key: o.header.raw_value.decode() for o in mutation.set_headers}


# -- header phase ---------------------------------------------------------------------------
async def test_clean_headers_continue_untouched(settings: Callable[..., Settings]) -> None:
    (reply,) = await exchange(servicer_for(settings()), headers("/v1/chat/completions"))
    assert reply == ep.ProcessingResponse(request_headers=ep.HeadersResponse())


async def test_spoofed_routeiq_headers_are_removed_and_the_route_recomputed(
    settings: Callable[..., Settings],
) -> None:
    spoof = headers("/v1/chat/completions", ("x-routeiq-model", "big"), ("x-routeiq-x", "1"))
    (reply,) = await exchange(servicer_for(settings()), spoof)
    common = reply.request_headers.response
    assert list(common.header_mutation.remove_headers) == ["x-routeiq-model", "x-routeiq-x"]
    assert common.clear_route_cache
    assert not reply.HasField("mode_override")


async def test_bodies_the_service_does_not_read_are_not_buffered(
    settings: Callable[..., Settings],
) -> None:
    servicer = servicer_for(settings())
    (upload,) = await exchange(servicer, headers("/v1/files"))
    assert upload.mode_override.request_body_mode == modes.ProcessingMode.NONE
    (get,) = await exchange(servicer, headers("/v1/models", eos=True))
    assert not get.HasField("mode_override")  # no body follows anyway
    (gzip,) = await exchange(
        servicer, headers("/v1/chat/completions", ("content-encoding", "gzip"))
    )
    assert gzip.mode_override.request_body_mode == modes.ProcessingMode.NONE
    (plain,) = await exchange(
        servicer, headers("/v1/chat/completions", ("content-encoding", "identity"))
    )
    assert not plain.HasField("mode_override")


# -- body phase -----------------------------------------------------------------------------
async def test_routed_body_rewrites_model_and_headers(settings: Callable[..., Settings]) -> None:
    replies = await exchange(
        servicer_for(settings()),
        headers("/v1/chat/completions"),
        body({**chat(f"a hard one {SECRET}"), "temperature": 0}),
    )
    routed = replies[1].request_body.response
    new_body = routed.body_mutation.body
    assert json.loads(new_body) == {**chat(f"a hard one {SECRET}", "big"), "temperature": 0}
    assert set_headers(replies[1]) == {
        "x-routeiq-model": "big",
        "x-routeiq-source": "STATIC",
        "content-length": str(len(new_body)),
    }
    assert routed.clear_route_cache
    assert routed.status == ep.CommonResponse.CONTINUE


@pytest.mark.parametrize(
    ("path", "route", "payload", "chosen"),
    [
        ("/v1/chat/completions", "openai", chat("easy"), "small"),  # keyword: first candidate
        ("/v1/chat/completions", "openai", chat("hard"), "big"),
        ("/v1/chat/completions", "openai", chat("hard", "cheap"), "small"),  # model alias first
        ("/v1/completions", "openai", {"model": "cheap", "prompt": "x"}, "small"),
        ("/v1/embeddings", "", {"model": "any", "input": "x"}, "e1"),  # path prefix, no key
        ("/v1/chat/completions", "other", chat("hard"), None),  # route key does not match
        ("/v1/completions", "openai", {"model": "auto", "prompt": "x"}, None),  # path does not
    ],
)
async def test_the_first_matching_route_decides(
    settings: Callable[..., Settings], path: str, route: str, payload: Any, chosen: str | None
) -> None:
    replies = await exchange(servicer_for(settings()), headers(path), body(payload), route=route)
    if chosen is None:
        assert replies[1] == ep.ProcessingResponse(request_body=ep.BodyResponse())
    else:
        assert set_headers(replies[1])["x-routeiq-model"] == chosen
        assert json.loads(replies[1].request_body.response.body_mutation.body)["model"] == chosen


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "cheap", "prompt": [1, 2, 3]},  # token ids: no text to route on
        {"model": "cheap", "prompt": "   "},  # the engine refuses an empty prompt
        {"model": "cheap", "prompt": "x" * 100_001},  # over limits.max_prompt_chars
    ],
)
async def test_requests_the_engine_cannot_route_pass_through(
    settings: Callable[..., Settings], payload: Any
) -> None:
    replies = await exchange(servicer_for(settings()), headers("/v1/completions"), body(payload))
    assert replies[1] == ep.ProcessingResponse(request_body=ep.BodyResponse())


async def test_not_ready_passes_through(settings: Callable[..., Settings]) -> None:
    servicer = servicer_for(settings(), install=False)
    replies = await exchange(servicer, headers("/v1/chat/completions"), body(chat("hard")))
    assert replies[1] == ep.ProcessingResponse(request_body=ep.BodyResponse())


async def test_unrequested_messages_get_an_empty_answer(settings: Callable[..., Settings]) -> None:
    message = ep.ProcessingRequest(response_headers=ep.HttpHeaders())
    (reply,) = await exchange(servicer_for(settings()), message)
    assert reply == ep.ProcessingResponse(response_headers=ep.HeadersResponse())


# -- malformed bodies -----------------------------------------------------------------------
async def test_malformed_body_passes_through_by_default(settings: Callable[..., Settings]) -> None:
    replies = await exchange(
        servicer_for(settings()), headers("/v1/chat/completions"), body(b"{nope")
    )
    assert replies[1] == ep.ProcessingResponse(request_body=ep.BodyResponse())


async def test_malformed_body_is_answered_400_when_configured(
    settings: Callable[..., Settings],
) -> None:
    servicer = servicer_for(settings(on_malformed="reject"))
    replies = await exchange(
        servicer,
        headers("/v1/chat/completions"),
        body({"model": "auto", "messages": SECRET}),
        headers("/v1/chat/completions"),  # the stream is still usable
    )
    immediate = replies[1].immediate_response
    assert immediate.status.code == 400
    assert [(h.header.key, h.header.raw_value) for h in immediate.headers.set_headers] == [
        ("content-type", b"application/json")
    ]
    error = json.loads(immediate.body)["error"]
    assert error["message"] == "'messages' must be an array, got a string"
    assert error["code"] == "routeiq_malformed_body"
    assert immediate.details == "routeiq_malformed_body"
    assert replies[2] == ep.ProcessingResponse(request_headers=ep.HeadersResponse())


async def test_prompt_text_is_never_logged(
    settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    servicer = servicer_for(settings(on_malformed="reject"))
    for payload in (chat(f"hard {SECRET}"), {"messages": [SECRET]}, b"[" + SECRET.encode()):
        await exchange(servicer, headers("/v1/chat/completions"), body(payload))
    await exchange(servicer, headers("/v1/completions"), body({"model": "cheap", "prompt": " "}))
    assert "chose big" in caplog.text
    assert "malformed chat body" in caplog.text
    assert "passes a request through: empty prompt" in caplog.text
    assert SECRET not in caplog.text


# -- configuration --------------------------------------------------------------------------
def test_settings_defaults_and_candidate_shorthand(settings: Callable[..., Settings]) -> None:
    ext = Settings().ext_proc
    assert (ext.enabled, ext.port, ext.routes, ext.on_malformed, ext.router) == (
        True,
        None,
        [],
        "pass",
        "",
    )
    chat_route = settings().ext_proc.routes[1]
    assert [c.name for c in chat_route.candidates] == ["small", "big"]
    assert chat_route.candidates[0].input_price_per_mtok is None


@pytest.mark.parametrize(
    ("ext_proc", "message"),
    [
        ({"routes": [*ROUTES, ROUTES[0]]}, "ext_proc route names must be unique, repeated: cheap"),
        ({"on_malformed": "drop"}, "on_malformed"),
        ({"routes": [{"name": "x", "candidates": []}]}, "candidates"),
        ({"routes": [{"name": "x", "candidates": ["a"], "match": {"host": "h"}}]}, "host"),
    ],
)
def test_bad_ext_proc_settings_stop_the_start(
    make_settings: Callable[..., Settings], ext_proc: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_settings(ext_proc=ext_proc)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"name": "r", "candidates": ["a"], "router": "nope"}, "route 'r': unknown router 'nope'"),
        ({"name": "r", "candidates": ["a", "b", "a"]}, "route 'r' lists candidates twice: a"),
    ],
)
def test_check_refuses_routes_that_could_never_decide(
    settings: Callable[..., Settings], route: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        servicer_for(settings(routes=[route])).check()
    servicer_for(settings()).check()


# -- lone surrogates ------------------------------------------------------------------------
LONE = b'"\\ud800"'  # a JSON string escape that no UTF-8 text can hold


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"auto","user":' + LONE + b',"messages":[{"role":"user","content":"hard"}]}',
        b'{"model":"auto","messages":[{"role":"user","content":"hard \\ud800 one"}]}',
    ],
)
async def test_lone_surrogates_are_routed_without_errors(
    settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    """Reproduction 7: in ``user`` the stream failed with UNKNOWN (UnicodeEncodeError while
    writing the body back); in message content the key hashing raised and logged a traceback
    on every such request, which then went through unrouted."""
    caplog.set_level(logging.INFO)
    replies = await exchange(servicer_for(settings()), headers("/v1/chat/completions"), body(raw))
    assert set_headers(replies[1])["x-routeiq-model"] == "big"
    rewritten = replies[1].request_body.response.body_mutation.body
    assert json.loads(rewritten) == {**json.loads(raw), "model": "big"}  # says the same
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
