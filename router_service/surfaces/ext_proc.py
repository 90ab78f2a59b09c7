"""The ``envoy.service.ext_proc.v3.ExternalProcessor`` surface: Envoy asks, we route.

Envoy opens one ``Process`` stream per HTTP request. The contract (see ``edge/envoy/envoy.yaml``):

- Envoy's filter runs with ``request_header_mode: SEND``, ``request_body_mode: BUFFERED``, no
  response processing (streamed answers pass through untouched), ``allow_mode_override: true``
  and ``failure_mode_allow: true`` (a slow or absent service never blocks traffic).
- Request headers: every client-sent ``x-routeiq-*`` header is removed (only the edge sets them)
  and the route cache is cleared when one was. A path whose body is not one of the four OpenAI
  APIs (chat completions, completions, embeddings, responses), or a compressed body
  (``content-encoding``), turns body processing off.
- Request body: the first route of ``ext_proc.routes`` whose match fits (``x-routeiq-route``
  gRPC metadata that Envoy sets per virtual host, the ``:path`` prefix, the body's ``model``)
  gives the candidates, router and policy; the engine decides; the answer rewrites the body's
  ``model``, sets ``x-routeiq-model``, ``x-routeiq-source`` and ``content-length`` and clears
  the route cache, so
  Envoy's routes send the request to the chosen model's cluster.
- The header phase is what makes routing work: with ``request_header_mode: SKIP`` Envoy
  forwards the headers upstream at once, so the body's answer can no longer set headers or
  change the route (checked with Envoy 1.40).
- A body that is not a well-formed request of its API passes through unchanged
  (``on_malformed: pass``) or is answered 400 with an OpenAI-style JSON error (``reject``).
  Anything else that keeps the service from deciding (no route matches, no text, bad input for
  the engine, not ready, a bug) passes the request through unchanged: the stream never breaks
  for one request's sake. Prompt text is never logged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from router_service._proto.envoy.config.core.v3 import base_pb2 as core
from router_service._proto.envoy.extensions.filters.http.ext_proc.v3 import (
    processing_mode_pb2 as modes,
)
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from router_service._proto.envoy.type.v3 import http_status_pb2
from router_service.config import ExtProcRoute, ExtProcSettings
from router_service.domain import Candidate, Decision, Policy, RouteInput, Source
from router_service.engine.engine import DecisionEngine
from router_service.errors import ConfigError, InvalidRequest, NotReady, PermissionDenied
from router_service.security.auth import CALLER
from router_service.surfaces.ext_proc_body import (
    MODEL_HEADER,
    ROUTE_KEY,
    SOURCE_HEADER,
    ApiKind,
    MalformedBody,
    ParsedBody,
    api_kind,
    error_body,
    parse_body,
    rewrite_model,
    spoofed_headers,
)

__all__ = ["EXT_PROC_SERVICE_NAME", "ExtProcServicer"]

log = logging.getLogger(__name__)

EXT_PROC_SERVICE_NAME: str = ep.DESCRIPTOR.services_by_name["ExternalProcessor"].full_name
_MAX_REQUEST_ID = 128
_OVERWRITE = core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD

Message = Any
"""A generated ``envoy.service.ext_proc.v3`` message."""
Ctx = grpc.aio.ServicerContext[Any, Any]

_CONTINUE_HEADERS = ep.ProcessingResponse(request_headers=ep.HeadersResponse())
_CONTINUE_BODY = ep.ProcessingResponse(request_body=ep.BodyResponse())
_NO_BODY = modes.ProcessingMode(request_body_mode=modes.ProcessingMode.NONE)


def _empty_reply(which: str) -> Message:
    """The do-nothing answer to a part Envoy sent (the answer's field has the part's name)."""
    reply = ep.ProcessingResponse()
    getattr(reply, which).SetInParent()
    return reply


@dataclass(slots=True)
class _Exchange:
    """What one stream (one HTTP request) has told us so far."""

    route_key: str | None
    path: str = ""
    kind: ApiKind | None = None
    request_id: str = ""


class ExtProcServicer(ep_grpc.ExternalProcessorServicer):
    """Envoy's external processor, delegating every decision to :class:`DecisionEngine`.

    Registered with :meth:`add_to`. Start-up calls :meth:`check` once the routers are loaded.
    """

    def __init__(self, engine: DecisionEngine, settings: ExtProcSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._candidates = {
            route.name: tuple(
                Candidate(c.name, c.input_price_per_mtok, c.output_price_per_mtok)
                for c in route.candidates
            )
            for route in settings.routes
        }

    def add_to(self, server: grpc.aio.Server) -> None:
        ep_grpc.add_ExternalProcessorServicer_to_server(self, server)

    def check(self) -> None:
        """:class:`ConfigError` when a route names a router that is not loaded or lists a
        candidate twice: such a route could never decide, so the start-up stops instead."""
        table = self._engine.table
        for route in self._settings.routes:
            router = route.router or self._settings.router
            if router and router not in table.routers:
                raise ConfigError(
                    f"ext_proc route {route.name!r}: unknown router {router!r}; loaded: "
                    + ", ".join(sorted(table.routers))
                )
            names = [c.name for c in route.candidates]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(
                    f"ext_proc route {route.name!r} lists candidates twice: {', '.join(dupes)}"
                )

    async def Process(
        self, requests: AsyncIterator[Message], context: Ctx
    ) -> AsyncIterator[Message]:
        """One HTTP request: one answer per message Envoy sends, in order.

        An async generator (not grpc.aio's read/write style, a little cheaper per stream in our
        runs): OpenTelemetry's server interceptor only wraps streaming handlers that are
        iterators. Malformed messages never get here (:mod:`router_service.surfaces.guard`)."""
        exchange = _Exchange(route_key=_metadata(context, ROUTE_KEY))
        async for message in requests:
            which = message.WhichOneof("request")
            if which == "request_headers":
                yield self._on_headers(message.request_headers, exchange)
            elif which == "request_body":
                yield await self._on_body(message.request_body, exchange)
            elif which is not None:  # not asked for; answer so that Envoy carries on
                yield _empty_reply(which)

    # -- phases ---------------------------------------------------------------------------
    def _on_headers(self, headers: Message, exchange: _Exchange) -> Message:
        names = []
        encoded = False
        for header in headers.headers.headers:
            key = header.key
            names.append(key)
            if key == ":path":
                exchange.path = _value(header)
            elif key == "x-request-id":
                exchange.request_id = _value(header)[:_MAX_REQUEST_ID]
            elif key == "content-encoding":
                encoded = _value(header).strip().lower() not in ("", "identity")
        # A compressed body is not JSON to us: leave it alone rather than call it malformed.
        exchange.kind = None if encoded else api_kind(exchange.path)
        spoofed = spoofed_headers(names)
        skip_body = exchange.kind is None and not headers.end_of_stream
        if not spoofed and not skip_body:
            return _CONTINUE_HEADERS
        reply = ep.ProcessingResponse(request_headers=ep.HeadersResponse())
        if spoofed:  # the route may have been chosen on a forged x-routeiq-model: choose again
            common = reply.request_headers.response
            common.header_mutation.remove_headers.extend(spoofed)
            common.clear_route_cache = True
        if skip_body:
            reply.mode_override.CopyFrom(_NO_BODY)
        return reply

    async def _on_body(self, body: Message, exchange: _Exchange) -> Message:
        if exchange.kind is None or not body.end_of_stream:
            return _CONTINUE_BODY  # not an API we read, or not buffered: nothing to decide
        try:
            parsed = parse_body(body.body, exchange.kind)
        except MalformedBody as exc:
            log.info("malformed %s body (%d bytes): %s", exchange.kind, len(body.body), exc)
            if self._settings.on_malformed == "reject":
                return _bad_request(str(exc))
            return _CONTINUE_BODY
        route = self._match(exchange, parsed.model)
        if route is None or not parsed.has_text:
            return _CONTINUE_BODY
        decision = await self._decide(route, parsed, exchange)
        return _CONTINUE_BODY if decision is None else _routed(parsed, decision)

    # -- helpers --------------------------------------------------------------------------
    def _match(self, exchange: _Exchange, model: str | None) -> ExtProcRoute | None:
        for route in self._settings.routes:
            match = route.match
            if match.route is not None and match.route != exchange.route_key:
                continue
            if match.path_prefix is not None and not exchange.path.startswith(match.path_prefix):
                continue
            if match.model is not None and match.model != model:
                continue
            return route
        return None

    async def _decide(
        self, route: ExtProcRoute, parsed: ParsedBody, exchange: _Exchange
    ) -> Decision | None:
        """The engine's decision, or ``None`` (logged, prompt-free) when it cannot give one."""
        labels = {"edge": "envoy", "route": route.name}
        caller = CALLER.get()  # with auth on, Envoy's token says which tenant it speaks for
        if caller is not None:
            labels = caller.scoped(labels)
        request = RouteInput(
            request_id=exchange.request_id,
            candidates=self._candidates[route.name],
            router=route.router or self._settings.router,
            policy=Policy(route.policy.cost_weight, route.policy.min_quality),
            prompt=parsed.prompt,
            messages=parsed.messages,
            labels=labels,
        )
        try:
            if caller is not None:
                caller.check_router(request.router or self._engine.table.default)
            decision = await self._engine.route(request)
        except PermissionDenied as exc:
            log.warning("ext_proc route %s passes a request through: %s", route.name, exc)
            return None
        except InvalidRequest as exc:  # messages never quote the prompt
            log.info("ext_proc route %s passes a request through: %s", route.name, exc)
            return None
        except NotReady:
            log.warning("ext_proc: routers not loaded; passing the request through")
            return None
        except Exception:
            log.exception("ext_proc route %s failed; passing the request through", route.name)
            return None
        log.debug("ext_proc route %s chose %s (%s)", route.name, decision.model, decision.reason)
        return decision


def _metadata(context: Ctx, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return str(value)
    return None


def _value(header: Message) -> str:
    """Envoy sends ``raw_value`` (bytes) by default and ``value`` in older set-ups."""
    raw: bytes = header.raw_value
    return raw.decode("utf-8", "replace") if raw else str(header.value)


@functools.lru_cache(maxsize=1024)  # x-routeiq-model takes a few values: build each once
def _model_header(model: str) -> Message:
    return _header(MODEL_HEADER, model)


@functools.lru_cache(maxsize=8)
def _source_header(source: Source) -> Message:
    return _header(SOURCE_HEADER, source.name)


def _header(key: str, value: str) -> Message:
    return core.HeaderValueOption(
        header=core.HeaderValue(key=key, raw_value=value.encode()), append_action=_OVERWRITE
    )


def _routed(parsed: ParsedBody, decision: Decision) -> Message:
    body = rewrite_model(parsed, decision.model)
    common = ep.CommonResponse(
        header_mutation=ep.HeaderMutation(
            set_headers=[
                _model_header(decision.model),
                _source_header(decision.source),
                _header("content-length", str(len(body))),
            ]
        ),
        body_mutation=ep.BodyMutation(body=body),
        clear_route_cache=True,  # without it Envoy keeps the route it chose at header time
    )
    return ep.ProcessingResponse(request_body=ep.BodyResponse(response=common))


def _bad_request(message: str) -> Message:
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.BadRequest),
            headers=ep.HeaderMutation(set_headers=[_header("content-type", "application/json")]),
            body=error_body(message),
            details="routeiq_malformed_body",
        )
    )
