"""RouteIQ routing inside the LiteLLM proxy: ``async_filter_deployments`` asks the Router service.

Load the module-level instance from the proxy config::

    litellm_settings:
      callbacks: edge.litellm.plugin.routeiq_router

What happens on each pick (LiteLLM calls the hook on every pick of a deployment in a model group,
retries and fallbacks included):

* Candidates: one per distinct name among the deployments. The name is ``model_info.routeiq_model``
  when set, else ``litellm_params.model`` (e.g. ``openai/gpt-4o-mini``): stable across restarts and
  key rotations, unlike ``model_info.id``, which LiteLLM derives from the parameters when the
  config gives none. Prices (USD per million tokens) come from ``litellm_params`` or
  ``model_info`` ``input_cost_per_token``/``output_cost_per_token`` × 1e6, else from LiteLLM's
  model cost map, else are left unknown.
* Input: the text every edge routes on (:mod:`router_service.routing_text`): chat messages
  become ``messages`` turns (text parts only), the Responses API's instructions and input items
  too; otherwise the ``prompt`` or ``input`` string(s) become ``prompt``.
* Start early, await late: in the proxy, ``async_pre_call_hook`` (the earliest point that knows
  the model group and the messages) already builds the call from the group's deployments and
  sends it; the pick then awaits that same call when the call it would make is identical (byte
  for byte), else cancels it and calls afresh. So the round trip overlaps LiteLLM's own work
  before the pick (measured: the plug-in's added p50 fell from 2.3 to 0.4 ms). Without the
  proxy (the SDK), for retries and fallbacks, the pick calls as below.
* Replicas: the target may resolve to several service replicas (``dns:///router-headless:50051``
  over a Kubernetes headless Service, or a static ``ipv4:10.0.0.1:50051,10.0.0.2:50051``); calls
  are spread over all of them round robin, and a replica that goes away is left out.
* One ``Route`` call with a deadline of ``ROUTEIQ_EDGE_DEADLINE_MS`` (default 30 ms, connection
  set-up included) over one ``grpc.aio`` channel per process and event loop, created on first use
  and connecting at once. The request id (the client's ``x-request-id``, else LiteLLM's call id)
  goes in ``request_id`` and, with a valid W3C ``traceparent``/``tracestate``, as gRPC metadata.
* Traces: each call is a ``routeiq.edge.route`` client span of the request's trace (its parent is
  the client's ``traceparent``) and the service continues it, so one trace shows the edge and the
  service. Spans are recorded when the proxy process has an OpenTelemetry SDK set up (LiteLLM's
  ``callbacks: ["otel"]`` sets one, exporting where ``OTEL_EXPORTER``/``OTEL_ENDPOINT`` say);
  without one the client's trace context is passed on unchanged.
* The answer's model maps back to the deployments of that name: a one-element list unless several
  deployments share the name, in which case the proxy's ``routing_strategy`` picks among them.

Fail-open: on a timeout, any gRPC error (service down, overloaded, invalid request), an answer
naming no candidate, a request without text, or any unexpected error, the hook returns the list
unchanged, so the proxy's own ``routing_strategy`` decides; it never raises and never waits past
the deadline. Each outcome is counted in :attr:`RouteIQRouter.counters`; fail-opens are logged
(at most one line per reason every 10 s) with the reason, the model group, the request id and the
candidate count only: never prompt text, tokens or keys.

The decision is stored in the request's LiteLLM metadata under ``routeiq`` (logging callbacks see
it as ``kwargs["litellm_params"]["metadata"]["routeiq"]``; LiteLLM's fixed-schema standard logging
payload and spend logs have no slot for it) and returned to the client as response headers
``x-routeiq-model``, ``x-routeiq-router``, ``x-routeiq-router-version``, ``x-routeiq-source``,
``x-routeiq-latency-us`` (time in the service), ``x-routeiq-edge-us`` (time in this hook), or
``x-routeiq-fail-open: REASON``.

Configuration (environment, read once at construction; no I/O happens before the first pick):
``ROUTEIQ_EDGE_TARGET`` (``127.0.0.1:50051``), ``ROUTEIQ_EDGE_DEADLINE_MS`` (``30``),
``ROUTEIQ_EDGE_ROUTER`` (empty = the service's default router; a request header
``x-routeiq-router`` overrides it per request), ``ROUTEIQ_EDGE_MODEL_GROUPS`` (comma-separated
model groups to route; empty = every group). TLS to the service: ``ROUTEIQ_EDGE_TLS_CA`` (the CA
of the service's certificate), ``ROUTEIQ_EDGE_TLS_CERT`` + ``ROUTEIQ_EDGE_TLS_KEY`` (a client
certificate, for mutual TLS), ``ROUTEIQ_EDGE_TLS_SERVER_NAME`` (the name in its certificate, when
not the target's host), or ``ROUTEIQ_EDGE_TLS=1`` alone for the system's CA roots. A bearer token
for the service's auth: ``ROUTEIQ_EDGE_TOKEN`` (sent as ``authorization`` metadata, never logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

import grpc
from litellm.integrations.custom_logger import CustomLogger
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from edge.litellm.deployments import (
    MAX_ID_CHARS,
    as_mapping,
    candidate_name,
    clean,
    client_request_id,
    deployment_prices,
    header_value,
    request_headers,
    set_input,
)
from router_service.client import ClientTLS, bearer_metadata
from router_service.proto import pb, pb_grpc
from router_service.telemetry import TRACEPARENT

if TYPE_CHECKING:
    from litellm.types.llms.openai import AllMessageValues

    from router_service._proto.routeiq.router.v1.router_pb2_grpc import RouterAsyncStub

__all__ = ["Decision", "EdgeCounters", "RouteIQRouter", "routeiq_router"]

log = logging.getLogger(__name__)

DEFAULT_TARGET: Final = "127.0.0.1:50051"
DEFAULT_DEADLINE_MS: Final = 30.0
METADATA_KEY: Final = "routeiq"
_LOG_EVERY_S: Final = 10.0
_PRICE_CACHE_MAX: Final = 4096
_TRACE_KEYS: Final = ("traceparent", "tracestate")
_W3C: Final = TraceContextTextMapPropagator()
_TRACER: Final = trace.get_tracer("routeiq.edge.litellm")  # follows the global provider once set
_CHANNEL_OPTIONS: Final = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_http_proxy", 0),  # never send routing calls through http(s)_proxy
    # Spread calls over every address the target resolves to (dns:///router-headless:50051,
    # or ipv4:10.0.0.1:50051,10.0.0.2:50051): one long-lived HTTP/2 connection to a Service's
    # address would pin all of a worker's calls to one replica.
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
)


@dataclass(slots=True)
class EdgeCounters:
    """What each pick did: ``routed`` chose; the fail-open reasons handed the list back."""

    routed: int = 0
    early: int = 0  # the answer came from the call started in the proxy's pre-call hook
    skipped_single: int = 0  # at most one distinct candidate: nothing to choose, no call made
    skipped_group: int = 0  # model group not listed in ROUTEIQ_EDGE_MODEL_GROUPS
    no_input: int = 0  # fail-open: no text to route on (e.g. token-id prompts)
    timeout: int = 0  # fail-open: no answer within the deadline
    unavailable: int = 0  # fail-open: UNAVAILABLE (service down, starting or stopping)
    rejected: int = 0  # fail-open: any other gRPC status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED…)
    unknown_model: int = 0  # fail-open: the answer named no candidate
    error: int = 0  # fail-open: unexpected error inside the plug-in

    @property
    def fail_open(self) -> int:
        return (
            self.no_input
            + self.timeout
            + self.unavailable
            + self.rejected
            + self.unknown_model
            + self.error
        )


class Decision(dict[str, object]):
    """A decision as stored in the request's metadata. Its own type, so that the header hook
    never echoes a look-alike ``routeiq`` entry a client put in the request's metadata."""


@dataclass(slots=True)
class _Pick:
    """One call of the hook: what the fail-open path needs to hand back and report."""

    model: str
    deployments: list[Any]
    kwargs: dict[Any, Any]
    started: float
    request_id: str = ""


_FIRST_CONNECT_S = 0.5
_EARLY_YIELDS: Final = 3
"""Event-loop turns the pre-call hook gives an early call: enough for it to be sent."""
_EARLY_MAX: Final = 4096
"""Calls started early and not yet claimed by a pick (a request that failed before its pick)."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One ``Route`` call: the request, its deterministic serialization (two builds of the
    same call compare equal by it), its request id and the gRPC metadata."""

    message: pb.RouteRequest = field(compare=False)
    request: bytes
    request_id: str
    metadata: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Conn:
    pid: int
    channel: grpc.aio.Channel
    stub: RouterAsyncStub
    warmed: bool = False


class RouteIQRouter(CustomLogger):
    """LiteLLM callback choosing deployments through the RouteIQ Router service (see module doc).

    Arguments default to the ``ROUTEIQ_EDGE_*`` environment variables; a bad value raises
    ``ValueError`` here, so the proxy refuses to start instead of failing on requests.
    """

    def __init__(
        self,
        target: str | None = None,
        deadline_ms: float | None = None,
        router: str | None = None,
        model_groups: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        env = os.environ
        self.target = target or env.get("ROUTEIQ_EDGE_TARGET") or DEFAULT_TARGET
        deadline = deadline_ms if deadline_ms is not None else _env_ms("ROUTEIQ_EDGE_DEADLINE_MS")
        if not 0 < deadline < 60_000:
            raise ValueError(f"ROUTEIQ_EDGE_DEADLINE_MS must be in (0, 60000) ms, got {deadline}")
        self.deadline_s = deadline / 1000.0
        self.router = router if router is not None else env.get("ROUTEIQ_EDGE_ROUTER", "")
        groups = model_groups
        if groups is None:
            groups = env.get("ROUTEIQ_EDGE_MODEL_GROUPS", "").split(",")
        self.model_groups = frozenset(g.strip() for g in groups if g.strip())
        self._tls = ClientTLS.from_env("ROUTEIQ_EDGE_TLS")
        self._auth = bearer_metadata(env.get("ROUTEIQ_EDGE_TOKEN", "").strip())
        self.counters = EdgeCounters()
        self._conns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Conn] = (
            weakref.WeakKeyDictionary()
        )
        self._prices: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        self._early: OrderedDict[str, tuple[_Call, asyncio.Task[Any], float]] = OrderedDict()
        self._last_log: dict[str, tuple[float, int]] = {}

    # -- LiteLLM hooks -----------------------------------------------------------------------

    async def async_filter_deployments(
        self,
        model: str,
        healthy_deployments: list[Any],
        messages: list[AllMessageValues] | None,
        request_kwargs: dict[Any, Any] | None = None,
        parent_otel_span: object | None = None,
    ) -> list[dict[Any, Any]]:
        """Narrow ``healthy_deployments`` to the deployment(s) of the model the service chose.

        Waits at most the deadline; on any failure returns ``healthy_deployments`` unchanged.
        """
        kwargs = request_kwargs if isinstance(request_kwargs, dict) else {}
        pick = _Pick(model, healthy_deployments, kwargs, time.perf_counter())
        try:
            if self.model_groups and model not in self.model_groups:
                self.counters.skipped_group += 1
                return healthy_deployments
            by_name = self._group_by_name(healthy_deployments)
            if len(by_name) < 2:
                self.counters.skipped_single += 1
                return healthy_deployments
            return await self._route(pick, by_name, messages)
        except Exception as exc:  # fail open; the type only: a message could quote the prompt
            return self._fail_open("error", pick, type(exc).__name__)

    async def async_pre_call_hook(
        self, user_api_key_dict: object, cache: object, data: dict[Any, Any], call_type: object
    ) -> None:
        """The proxy's earliest hook: start the ``Route`` call now, so that its round trip
        overlaps LiteLLM's own work until :meth:`async_filter_deployments` needs the answer.
        Changes nothing in the request and never fails it."""
        try:
            started = self._start_early(data)
        except Exception as exc:  # the filter calls afresh; the type only, never the prompt
            log.debug("routeiq: no early call (%s)", type(exc).__name__)
            return
        if started:  # let the call reach the network before LiteLLM's next stretch of work
            for _ in range(_EARLY_YIELDS):
                await asyncio.sleep(0)

    async def async_post_call_response_headers_hook(
        self,
        data: dict[Any, Any],
        user_api_key_dict: object,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        """``x-routeiq-*`` response headers from the decision stored in the request's metadata."""
        decision = _stored(data)
        if decision is None:
            return None
        if "fail_open" in decision:
            return {"x-routeiq-fail-open": header_value(decision["fail_open"])}
        names = ("model", "router", "router_version", "source", "latency_us", "edge_us")
        return {
            "x-routeiq-" + name.replace("_", "-"): header_value(decision[name])
            for name in names
            if decision.get(name) not in (None, "")
        }

    # -- the decision ------------------------------------------------------------------------

    def _request(
        self, model: str, by_name: dict[str, list[Any]], messages: object, kwargs: Mapping[Any, Any]
    ) -> _Call | None:
        """The ``Route`` call for a pick (``None`` when the request carries no text)."""
        headers = request_headers(kwargs)
        request_id = client_request_id(headers, kwargs)
        request = pb.RouteRequest(
            request_id=request_id,
            router=clean(headers.get("x-routeiq-router")) or self.router,
            labels={"model_group": model[:MAX_ID_CHARS], "edge": "litellm"},
        )
        if not set_input(request, messages, kwargs):
            return None
        for name, group in by_name.items():
            candidate = request.candidates.add(name=name)
            input_price, output_price = self._price(name, group)
            if input_price is not None:
                candidate.input_price_per_mtok = input_price
            if output_price is not None:
                candidate.output_price_per_mtok = output_price
        metadata = [("x-request-id", request_id)] if request_id else []
        metadata.extend(self._auth)
        traceparent = headers.get("traceparent", "").strip().lower()
        if TRACEPARENT.fullmatch(traceparent):
            metadata.append(("traceparent", traceparent))
            tracestate = clean(headers.get("tracestate"), 512)
            if tracestate:
                metadata.append(("tracestate", tracestate))
        wire = request.SerializeToString(deterministic=True)
        return _Call(request, wire, request_id, tuple(metadata))

    async def _send(self, call: _Call) -> pb.RouteResponse:
        """The ``Route`` call itself, under the deadline (counted from here), in a client span
        whose context goes with the call in place of the client's."""
        await self._warm_once()
        parent = _W3C.extract({k: v for k, v in call.metadata if k in _TRACE_KEYS})
        span = _TRACER.start_span(
            "routeiq.edge.route",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={"routeiq.request_id": call.request_id, "routeiq.edge": "litellm"},
        )
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span))
        metadata = [m for m in call.metadata if m[0] not in _TRACE_KEYS] + list(carrier.items())
        try:
            answer: pb.RouteResponse = await self._stub().Route(
                call.message, timeout=self.deadline_s, metadata=metadata
            )
            span.set_attributes({"routeiq.model": answer.model, "routeiq.router": answer.router})
            return answer
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def _start_early(self, data: Mapping[Any, Any]) -> bool:
        """Start the ``Route`` call of a proxy request before LiteLLM picks a deployment, from
        the model group's deployments; :meth:`async_filter_deployments` awaits it when its own
        call would be the same, else calls afresh."""
        model, call_id = data.get("model"), data.get("litellm_call_id")
        if not isinstance(model, str) or not isinstance(call_id, str) or not call_id:
            return False
        if self.model_groups and model not in self.model_groups:
            return False
        by_name = self._group_by_name(_group_deployments(model))
        if len(by_name) < 2:
            return False
        call = self._request(model, by_name, data.get("messages"), data)
        if call is None:
            return False
        task = asyncio.ensure_future(self._send(call))
        task.add_done_callback(_consume)
        now = time.monotonic()
        while self._early and (
            len(self._early) >= _EARLY_MAX or now - next(iter(self._early.values()))[2] > 60
        ):
            _, (_, stale, _) = self._early.popitem(last=False)
            stale.cancel()
        self._early[call_id] = (call, task, now)
        return True

    def _early_answer(self, call: _Call, kwargs: Mapping[Any, Any]) -> asyncio.Task[Any] | None:
        """The call started early for this request, when it is exactly the call to make now and
        has not already failed (e.g. timed out while LiteLLM was busy before the pick)."""
        call_id = kwargs.get("litellm_call_id")
        early = self._early.pop(call_id, None) if isinstance(call_id, str) else None
        if early is None:
            return None
        started, task, _ = early
        if started != call:
            task.cancel()
            return None
        if task.done() and (task.cancelled() or task.exception() is not None):
            return None  # failed (or timed out) before the pick: the pick gets its own call
        return task

    async def _route(
        self, pick: _Pick, by_name: dict[str, list[Any]], messages: object
    ) -> list[dict[Any, Any]]:
        call = self._request(pick.model, by_name, messages, pick.kwargs)
        if call is None:
            return self._fail_open("no_input", pick)
        request_id = pick.request_id = call.request_id
        early = self._early_answer(call, pick.kwargs)
        if early is not None:
            self.counters.early += 1
        try:
            answer = await (early if early is not None else self._send(call))
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            reason = {
                grpc.StatusCode.DEADLINE_EXCEEDED: "timeout",
                grpc.StatusCode.UNAVAILABLE: "unavailable",
            }.get(code, "rejected")
            # the service's messages are written for callers and never quote the prompt
            detail = f"{code.name}: {exc.details()}"[:200] if reason == "rejected" else code.name
            return self._fail_open(reason, pick, detail)
        except TimeoutError:
            return self._fail_open("timeout", pick)
        chosen = by_name.get(answer.model)
        if not chosen:
            return self._fail_open("unknown_model", pick)
        self.counters.routed += 1
        _store(
            pick.kwargs,
            Decision(
                model=answer.model,
                router=answer.router,
                router_version=answer.router_version,
                source=pb.Source.Name(answer.source),
                reason=answer.reason,
                latency_us=answer.latency_us,
                edge_us=int((time.perf_counter() - pick.started) * 1e6),
                request_id=request_id,
            ),
        )
        return list(chosen)

    def _fail_open(self, reason: str, pick: _Pick, status: str = "") -> list[dict[Any, Any]]:
        setattr(self.counters, reason, getattr(self.counters, reason) + 1)
        _store(pick.kwargs, Decision(fail_open=reason, request_id=pick.request_id))
        now = time.monotonic()
        last, suppressed = self._last_log.get(reason, (-_LOG_EVERY_S, 0))
        if now - last >= _LOG_EVERY_S:
            self._last_log[reason] = (now, 0)
            log.warning(
                "routeiq: failing open (%s%s) for model group %r, request %s, %d deployments; "
                "%d more since the last line",
                reason,
                f" {status}" if status else "",
                pick.model,
                pick.request_id or "-",
                len(pick.deployments),
                suppressed,
            )
        else:
            self._last_log[reason] = (last, suppressed + 1)
        return pick.deployments

    def _group_by_name(self, deployments: Sequence[Any]) -> dict[str, list[Any]]:
        by_name: dict[str, list[Any]] = {}
        for deployment in deployments:
            name = candidate_name(deployment)
            if name:
                by_name.setdefault(name, []).append(deployment)
        return by_name

    def _price(self, name: str, group: Sequence[Any]) -> tuple[float | None, float | None]:
        """USD per million input/output tokens of the first deployment that knows; cached."""
        key = (name, str(as_mapping(as_mapping(group[0]).get("model_info")).get("id", "")))
        cached = self._prices.get(key)
        if cached is None:
            cached = (None, None)
            for deployment in group:
                cached = deployment_prices(deployment)
                if cached != (None, None):
                    break
            if len(self._prices) >= _PRICE_CACHE_MAX:
                self._prices.clear()
            self._prices[key] = cached
        return cached

    # -- the channel -------------------------------------------------------------------------

    def _stub(self) -> RouterAsyncStub:
        """The stub of this process's and event loop's channel, created (and connecting) once."""
        loop = asyncio.get_running_loop()
        conn = self._conns.get(loop)
        if conn is None or conn.pid != os.getpid():
            if self._tls is None:
                channel = grpc.aio.insecure_channel(self.target, options=list(_CHANNEL_OPTIONS))
            else:
                channel = grpc.aio.secure_channel(
                    self.target,
                    self._tls.credentials(),
                    options=[*_CHANNEL_OPTIONS, *self._tls.options()],
                )
            channel.get_state(try_to_connect=True)
            conn = _Conn(os.getpid(), channel, pb_grpc.RouterStub(channel))
            self._conns[loop] = conn
        return conn.stub

    async def _warm_once(self) -> None:
        """The first pick of a worker waits (up to ``_FIRST_CONNECT_S``) for its channel to
        connect, so that the connection set-up does not eat the first decision's deadline;
        later picks never wait for it."""
        self._stub()
        if not self._conns[asyncio.get_running_loop()].warmed:
            await self.warm(_FIRST_CONNECT_S)

    async def warm(self, timeout_s: float = 1.0) -> bool:
        """Create this loop's channel and wait up to ``timeout_s`` until it is connected.

        Returns False at once when the connection attempt fails (service down: the caller
        fails open without waiting out ``timeout_s``)."""
        self._stub()
        conn = self._conns[asyncio.get_running_loop()]
        conn.warmed = True
        deadline = asyncio.get_running_loop().time() + timeout_s
        state = conn.channel.get_state(try_to_connect=True)
        while state is not grpc.ChannelConnectivity.READY:
            left = deadline - asyncio.get_running_loop().time()
            if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE or left <= 0:
                return False
            try:
                await asyncio.wait_for(conn.channel.wait_for_state_change(state), left)
            except TimeoutError:
                return False
            state = conn.channel.get_state(try_to_connect=True)
        return True

    async def close(self) -> None:
        """Close this event loop's channel (the next pick opens a new one)."""
        conn = self._conns.pop(asyncio.get_running_loop(), None)
        if conn is not None and conn.pid == os.getpid():
            await conn.channel.close()

    def counter_values(self) -> dict[str, int]:
        """The counters as a plain dict, with the ``fail_open`` total."""
        return {**asdict(self.counters), "fail_open": self.counters.fail_open}


# -- request metadata ----------------------------------------------------------------------


def _group_deployments(model: str) -> Sequence[Any]:
    """The proxy's deployments of model group ``model`` (none outside the proxy)."""
    from litellm.proxy import proxy_server  # noqa: PLC0415 - the proxy's router, when running

    router = getattr(proxy_server, "llm_router", None)
    if router is None:
        return ()
    found = router.registry().deployments(model)
    return found if isinstance(found, list) else ()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an early call's outcome, so that an unclaimed one is not logged as unhandled."""
    if not task.cancelled():
        task.exception()


def _env_ms(name: str) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else DEFAULT_DEADLINE_MS
    except ValueError:
        raise ValueError(f"{name} must be a number of milliseconds, got {raw!r}") from None


def _store(kwargs: dict[Any, Any], decision: Decision) -> None:
    """Put the decision in the request's LiteLLM metadata (shared with the later hooks)."""
    for key in ("litellm_metadata", "metadata"):
        found = kwargs.get(key)
        if isinstance(found, dict):
            found[METADATA_KEY] = decision
            return


def _stored(data: Mapping[Any, Any]) -> Decision | None:
    for key in ("litellm_metadata", "metadata"):
        found = as_mapping(data.get(key)).get(METADATA_KEY)
        if isinstance(found, Decision):
            return found
    return None


routeiq_router = RouteIQRouter()
"""The instance named in the proxy config (``edge.litellm.plugin.routeiq_router``)."""
