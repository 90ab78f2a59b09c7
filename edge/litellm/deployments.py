"""LiteLLM's request and deployment shapes, read into what a ``Route`` call needs: candidate
names and prices, the text input, client headers and ids. Pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import litellm

from router_service.proto import pb
from router_service.routing_text import ApiKind, MalformedBody, routing_text

__all__ = [
    "MAX_ID_CHARS",
    "as_mapping",
    "candidate_name",
    "clean",
    "client_request_id",
    "deployment_prices",
    "header_value",
    "request_headers",
    "set_input",
]

MAX_ID_CHARS: Final = 256
_PER_MTOK: Final = 1e6
_PRINTABLE: Final = re.compile(r"[\x21-\x7e][\x20-\x7e]*")
_UNSAFE_HEADER_CHARS: Final = re.compile(r"[^\x20-\x7e]")


def candidate_name(deployment: object) -> str:
    """``model_info.routeiq_model`` when set, else ``litellm_params.model``; ``""`` when neither."""
    entry = as_mapping(deployment)
    override = as_mapping(entry.get("model_info")).get("routeiq_model")
    name = override or as_mapping(entry.get("litellm_params")).get("model")
    return name if isinstance(name, str) else ""


def deployment_prices(deployment: object) -> tuple[float | None, float | None]:
    """USD per million input and output tokens, from the deployment or LiteLLM's cost map."""
    entry = as_mapping(deployment)
    params, info = as_mapping(entry.get("litellm_params")), as_mapping(entry.get("model_info"))
    model = params.get("model")
    names = (model, model.split("/", 1)[-1]) if isinstance(model, str) else ()
    extra = (info.get("routeiq_model"), info.get("base_model"))
    keys = [k for k in (*names, *extra) if isinstance(k, str) and k]
    sources = [params, info, *(as_mapping(litellm.model_cost.get(k)) for k in keys)]
    prices: list[float | None] = []
    for field_name in ("input_cost_per_token", "output_cost_per_token"):
        found = next((s[field_name] for s in sources if _is_price(s.get(field_name))), None)
        prices.append(float(found) * _PER_MTOK if found is not None else None)
    return prices[0], prices[1]


def set_input(request: pb.RouteRequest, messages: object, kwargs: Mapping[Any, Any]) -> bool:
    """The call's routing text into ``request`` (``messages`` turns or ``prompt``), by the rules
    every edge shares (:mod:`router_service.routing_text`); ``False`` when it carries none."""
    body, kind = _as_body(messages, kwargs)
    if kind is None:
        return False
    try:
        text = routing_text(body, kind)
    except MalformedBody:
        return False
    if text.messages is not None and any(content.strip() for _, content in text.messages):
        for role, content in text.messages:
            request.messages.turns.add(role=role, content=content)
        return True
    if text.prompt is not None and text.prompt.strip():
        request.prompt = text.prompt
        return True
    return False


def _as_body(messages: object, kwargs: Mapping[Any, Any]) -> tuple[dict[str, Any], ApiKind | None]:
    """The request as the body its API would have had, from what LiteLLM hands a plug-in: the
    chat ``messages`` (with Anthropic's ``system`` beside them), else the Responses API's
    ``instructions``/``input`` items, else a completion ``prompt``, else an embedding ``input``."""
    if isinstance(messages, list) and messages:
        if kwargs.get("system") is not None:
            return {"system": kwargs["system"], "messages": messages}, "messages"
        return {"messages": messages}, "chat"
    items = kwargs.get("input")
    if kwargs.get("instructions") is not None or (
        isinstance(items, list) and any(isinstance(item, Mapping) for item in items)
    ):
        return {"instructions": kwargs.get("instructions"), "input": items}, "responses"
    if kwargs.get("prompt") is not None:
        return {"prompt": kwargs["prompt"]}, "completions"
    if items is not None:
        return {"input": items}, "embeddings"
    return {}, None


def request_headers(kwargs: Mapping[Any, Any]) -> dict[str, str]:
    """Client request headers as LiteLLM recorded them (lower-cased names)."""
    for found in (
        as_mapping(kwargs.get("litellm_metadata")).get("headers"),
        as_mapping(kwargs.get("metadata")).get("headers"),
        as_mapping(kwargs.get("proxy_server_request")).get("headers"),
    ):
        if isinstance(found, Mapping) and found:
            return {str(k).lower(): v for k, v in found.items() if isinstance(v, str)}
    return {}


def client_request_id(headers: Mapping[str, str], kwargs: Mapping[Any, Any]) -> str:
    return clean(headers.get("x-request-id")) or clean(kwargs.get("litellm_call_id"))


def clean(value: object, limit: int = MAX_ID_CHARS) -> str:
    """``value`` when it is printable ASCII of at most ``limit`` chars (safe as gRPC metadata)."""
    if isinstance(value, str) and len(value) <= limit and _PRINTABLE.fullmatch(value):
        return value.strip()
    return ""


def header_value(value: object) -> str:
    """Printable ASCII only (no CR/LF), at most 256 characters."""
    return _UNSAFE_HEADER_CHARS.sub("?", str(value))[:MAX_ID_CHARS]


def as_mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # the common case, without the slower ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def _is_price(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
