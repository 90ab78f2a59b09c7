"""The text a request is routed on: one set of rules for every edge.

Both edges turn an OpenAI-style (or Anthropic-style) request into the input of a ``Route`` call
here, so the same request is routed on the same text whether it came through Envoy (the
ext_proc body reader) or through the LiteLLM plug-in. Pure functions over decoded JSON; no I/O,
nothing of the service beyond the error class, so the edge can import it.

What counts as text, per API:

===============  =====================================================================
``chat``         ``messages[].content``: a string, or the ``text``/``input_text``/
                 ``output_text`` parts of a list; one turn per message, with its role
``messages``     Anthropic: ``system`` (a string or text blocks) as a first system turn,
                 then ``messages`` as for chat
``responses``    ``instructions`` as a first system turn, then ``input``: a string (one
                 user turn) or items with ``content`` (one turn each)
``completions``  ``prompt``: a string or a list of strings (joined by newlines); token ids
                 carry no text
``embeddings``   ``input``, as ``prompt`` above
===============  =====================================================================

Malformed shapes raise :class:`MalformedBody`, whose message says what is wrong and never
quotes the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from router_service.errors import InvalidRequest

__all__ = ["ApiKind", "MalformedBody", "RoutingText", "json_type", "routing_text"]

ApiKind = Literal["chat", "completions", "embeddings", "responses", "messages"]
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


class MalformedBody(InvalidRequest):
    """The request is not a well-formed request of its API; the message never quotes it."""


@dataclass(frozen=True, slots=True)
class RoutingText:
    """At most one of ``prompt`` and ``messages`` is set; neither when the request carries no
    text (token ids, images only)."""

    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None

    @property
    def has_text(self) -> bool:
        return self.prompt is not None or self.messages is not None


def routing_text(payload: Mapping[str, Any], kind: ApiKind) -> RoutingText:
    """The routing input of a decoded request body of API ``kind`` (see the module doc).

    JSON may escape a lone surrogate (``"\\ud800"``), which no UTF-8 text (and so no protobuf
    string) can hold: in the routing text it becomes U+FFFD."""
    if kind == "chat":
        text = RoutingText(messages=_turns(payload.get("messages"), "messages"))
    elif kind == "messages":
        system = payload.get("system")
        turns = () if system is None else (("system", _content(system, "'system'")),)
        text = RoutingText(messages=turns + _turns(payload.get("messages"), "messages"))
    elif kind == "completions":
        text = RoutingText(prompt=_texts(payload, "prompt"))
    elif kind == "embeddings":
        text = RoutingText(prompt=_texts(payload, "input"))
    else:
        text = RoutingText(messages=_responses_turns(payload))
    return _encodable(text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def _encodable(text: RoutingText) -> RoutingText:
    prompt = None if text.prompt is None else _clean(text.prompt)
    messages = text.messages
    if messages is not None:
        messages = tuple((_clean(role), _clean(content)) for role, content in messages)
    return RoutingText(prompt, messages)


def json_type(value: object) -> str:
    """How a message names a JSON value's type: ``an object``, ``a string``, ``null``, …"""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _content(content: object, where: str) -> str:
    """Message content: a string, null, or a list of parts whose text parts are kept."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise MalformedBody(
            f"{where} must be a string or an array of parts, got {json_type(content)}"
        )
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise MalformedBody(f"{where}[{i}] must be an object, got {json_type(part)}")
        if part.get("type") in _TEXT_PARTS:
            text = part.get("text")
            if not isinstance(text, str):
                raise MalformedBody(f"{where}[{i}].text must be a string, got {json_type(text)}")
            texts.append(text)
    return "\n".join(texts)


def _turn(item: object, where: str) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise MalformedBody(f"{where} must be an object, got {json_type(item)}")
    role = item.get("role", "")
    if not isinstance(role, str):
        raise MalformedBody(f"{where}.role must be a string, got {json_type(role)}")
    return role, _content(item.get("content"), f"{where}.content")


def _turns(messages: object, field: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(messages, list):
        raise MalformedBody(f"'{field}' must be an array, got {json_type(messages)}")
    if not messages:
        raise MalformedBody(f"'{field}' is empty")
    return tuple(_turn(m, f"{field}[{i}]") for i, m in enumerate(messages))


def _texts(payload: Mapping[str, Any], field: str) -> str | None:
    """A string or an array of strings (joined); ``None`` for token ids, which carry no text."""
    value = payload.get(field)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, list) and value and all(_is_tokens(v) for v in value):
        return None
    raise MalformedBody(
        f"'{field}' must be a string or an array of strings or token ids, got {json_type(value)}"
        + (" (empty)" if value == [] else "")
    )


def _is_tokens(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def _responses_turns(payload: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """Responses API: ``instructions`` (a system turn) then ``input`` (a string or items)."""
    turns: list[tuple[str, str]] = []
    instructions = payload.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise MalformedBody(f"'instructions' must be a string, got {json_type(instructions)}")
        turns.append(("system", instructions))
    items = payload.get("input")
    if isinstance(items, str):
        turns.append(("user", items))
    elif isinstance(items, list):
        for i, item in enumerate(items):
            if isinstance(item, dict) and "content" in item:
                turns.append(_turn(item, f"input[{i}]"))
            elif not isinstance(item, dict):
                raise MalformedBody(f"input[{i}] must be an object, got {json_type(item)}")
    elif items is not None or not turns:
        raise MalformedBody(
            f"'input' must be a string or an array of items, got {json_type(items)}"
        )
    return tuple(turns) or None
