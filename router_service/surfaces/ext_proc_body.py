"""OpenAI-style request bodies for the Envoy ext_proc surface: parse, read the text, rewrite.

Pure functions, no gRPC and no I/O, so that the edge's contract is testable without sockets:

- :func:`api_kind` names the API a request path belongs to (chat, completions, embeddings,
  responses, Anthropic messages), or ``None`` for paths whose body the service does not read.
- :func:`parse_body` turns the buffered JSON body into a :class:`ParsedBody` (the ``model`` the
  client asked for and the text to route on, by the rules every edge shares:
  :mod:`router_service.routing_text`) or raises :class:`MalformedBody`, whose message says
  what is wrong without quoting the body.
- :func:`rewrite_model` serialises the body again with ``model`` replaced.
- :func:`spoofed_headers` lists the ``x-routeiq-*`` headers a client sent (only the edge may set
  them), and :func:`error_body` is the JSON of a 400 answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from router_service.routing_text import ApiKind, MalformedBody, json_type, routing_text

__all__ = [
    "HEADER_PREFIX",
    "MODEL_HEADER",
    "ROUTE_KEY",
    "SOURCE_HEADER",
    "ApiKind",
    "MalformedBody",
    "ParsedBody",
    "api_kind",
    "error_body",
    "parse_body",
    "rewrite_model",
    "spoofed_headers",
]

HEADER_PREFIX = "x-routeiq-"
MODEL_HEADER = "x-routeiq-model"
"""Set by the service on the request; Envoy's routes match it to pick the upstream cluster."""
SOURCE_HEADER = "x-routeiq-source"
"""Set by the service on the request: where the decision came from (MODEL, CACHE, STATIC,
FALLBACK); Envoy's config copies it (and the model) onto the response for the client."""
ROUTE_KEY = "x-routeiq-route"
"""gRPC initial metadata that Envoy's config sets per virtual host to name an ext_proc route."""

_SUFFIXES: tuple[tuple[str, ApiKind], ...] = (
    ("/chat/completions", "chat"),
    ("/completions", "completions"),
    ("/embeddings", "embeddings"),
    ("/responses", "responses"),
    ("/messages", "messages"),
)


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A parsed request body. ``prompt`` and ``messages`` are the text the engine routes on:
    at most one is set, neither when the body carries no text (token ids, images only)."""

    payload: dict[str, Any]
    model: str | None
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None

    @property
    def has_text(self) -> bool:
        return self.prompt is not None or self.messages is not None


def api_kind(path: str) -> ApiKind | None:
    """The API of a request path (``:path``, query ignored), e.g. ``/v1/chat/completions``."""
    bare = path.split("?", 1)[0].rstrip("/")
    for suffix, kind in _SUFFIXES:
        if bare.endswith(suffix):
            return kind
    return None


def _reject_constant(name: str) -> float:
    raise MalformedBody(f"body is not valid JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # e.g. 1e999: it would be written back as Infinity, not JSON
        raise MalformedBody("body has a number out of range (over 1.8e308)")
    return value


# Built once: json.loads/json.dumps with options build a new decoder/encoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def parse_body(raw: bytes, kind: ApiKind) -> ParsedBody:
    """Parse a buffered body of API ``kind``; :class:`MalformedBody` when it is not one."""
    if not raw.strip():
        raise MalformedBody("body is empty: expected a JSON object")
    try:  # JSON over HTTP is UTF-8 (RFC 8259); json.loads(bytes) would also guess UTF-16/32
        payload = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedBody("body is not valid UTF-8 JSON") from None
    except RecursionError:
        raise MalformedBody("body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(payload, dict):
        raise MalformedBody(f"body must be a JSON object, got {json_type(payload)}")
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise MalformedBody(f"'model' must be a string, got {json_type(model)}")
    text = routing_text(payload, kind)
    return ParsedBody(payload, model, text.prompt, text.messages)


def rewrite_model(parsed: ParsedBody, model: str) -> bytes:
    """The body with ``model`` set to ``model``, as compact UTF-8 JSON (other fields as sent).
    A body holding a lone surrogate (legal as a JSON escape, not as UTF-8) is written with
    every non-ASCII character escaped, which says the same."""
    text = _ENCODER.encode({**parsed.payload, "model": model})
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode({**parsed.payload, "model": model}).encode()


def spoofed_headers(names: Iterable[str]) -> list[str]:
    """The ``x-routeiq-*`` header names among ``names``: only the edge may set them."""
    return [name for name in names if name.lower().startswith(HEADER_PREFIX)]


def error_body(message: str, code: str = "routeiq_malformed_body") -> bytes:
    """An OpenAI-style error object, what OpenAI clients expect with a 400."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json.dumps({"error": error}).encode()
