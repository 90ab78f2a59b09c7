"""What every call passes before its handler: a body that parses, and (with auth on) a known
bearer token; and, with metrics, what every call is counted as (method, status code, time,
in flight).

gRPC's generated ``add_*_to_server`` functions register typed handlers whose deserializer
raises on bytes that are not the request message, which the framework answers ``UNKNOWN``.
:func:`add_guarded` registers the same handlers with a deserializer that turns such bytes into
a :class:`Malformed` marker, answered ``INVALID_ARGUMENT`` with a short message, and with the
caller's :class:`Principal` in :data:`CALLER` for the handler. With metrics, one more frame
counts the call (``routeiq_rpc_*``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from router_service.errors import Unauthenticated
from router_service.metrics import Metrics, RpcMetrics
from router_service.security.auth import CALLER, TokenAuth

__all__ = ["Malformed", "add_guarded"]

Ctx = grpc.aio.ServicerContext[Any, Any]
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]  # generic in the stubs only
else:
    Handler = grpc.RpcMethodHandler


class Malformed:
    """Bytes that did not parse as the method's request message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Capture:
    """Stands in for a server to collect what a generated ``add_*_to_server`` registers."""

    def __init__(self) -> None:
        self.services: list[tuple[str, Mapping[str, Handler]]] = []
        self.generic = 0

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Counted only: the registered handlers below are the same ones."""
        self.generic += len(handlers)

    def add_registered_method_handlers(self, name: str, handlers: Mapping[str, Handler]) -> None:
        self.services.append((name, handlers))


def _parser(deserialize: Callable[[bytes], Any], what: str) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # protobuf's DecodeError and friends: the bytes are the problem
            return Malformed(f"the request body is not a valid {what} message")

    return parse


async def _admit(auth: TokenAuth | None, context: Ctx) -> None:
    if auth is None:
        return
    try:
        CALLER.set(auth.authenticate(list(context.invocation_metadata() or ())))
    except Unauthenticated as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))


def _unary_in(behavior: Callable[..., Any], auth: TokenAuth | None) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream_out(request: Any, context: Ctx) -> AsyncIterator[Any]:
            if isinstance(request, Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            await _admit(auth, context)
            async for item in behavior(request, context):
                yield item

        return stream_out

    async def unary_out(request: Any, context: Ctx) -> Any:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        await _admit(auth, context)
        return await behavior(request, context)

    return unary_out


def _stream_in(behavior: Callable[..., Any], auth: TokenAuth | None) -> Callable[..., Any]:
    async def checked(requests: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Malformed):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            yield request

    if inspect.isasyncgenfunction(behavior):

        async def stream_out(requests: Any, context: Ctx) -> AsyncIterator[Any]:
            await _admit(auth, context)
            async for item in behavior(checked(requests, context), context):
                yield item

        return stream_out

    async def unary_out(requests: Any, context: Ctx) -> Any:
        await _admit(auth, context)
        return await behavior(checked(requests, context), context)

    return unary_out


def _code(exc: BaseException, context: Ctx) -> str:
    """The status a call that raised ``exc`` ends with: what ``abort`` set, else CANCELLED for
    a call the client gave up on, else UNKNOWN (what grpc answers for an exception)."""
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _observed(behavior: Callable[..., Any], rpc: RpcMetrics) -> Callable[..., Any]:
    """``behavior`` counted: in flight while it runs, then its status code and time."""
    if inspect.isasyncgenfunction(behavior):

        async def stream_out(request: Any, context: Ctx) -> AsyncIterator[Any]:
            rpc.in_flight += 1
            start, code = time.perf_counter(), "OK"
            try:
                async for item in behavior(request, context):
                    yield item
            except BaseException as exc:
                code = _code(exc, context)
                raise
            finally:
                rpc.finished(code, time.perf_counter() - start)

        return stream_out

    async def unary_out(request: Any, context: Ctx) -> Any:
        rpc.in_flight += 1
        start, code = time.perf_counter(), "OK"
        try:
            return await behavior(request, context)
        except BaseException as exc:
            code = _code(exc, context)
            raise
        finally:
            rpc.finished(code, time.perf_counter() - start)

    return unary_out


def _guard(
    handler: Handler, what: str, method: str, auth: TokenAuth | None, metrics: Metrics | None
) -> Any:
    assert handler.request_deserializer is not None  # generated handlers always have one
    parse = _parser(handler.request_deserializer, what)
    kind = (
        ("stream" if handler.request_streaming else "unary")
        + "_"
        + ("stream" if handler.response_streaming else "unary")
    )
    behavior = getattr(handler, kind)
    if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
        return handler  # a synchronous handler: not ours, left as it is
    wrap = _stream_in if handler.request_streaming else _unary_in
    guarded = wrap(behavior, auth)
    if metrics is not None:
        guarded = _observed(guarded, metrics.rpc(method))
    return handler._replace(request_deserializer=parse, **{kind: guarded})  # type: ignore[attr-defined]


def _message_name(handler: Handler, fallback: str) -> str:
    owner = getattr(handler.request_deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", fallback))


def add_guarded(
    add: Callable[[Any], None],
    server: grpc.aio.Server,
    auth: TokenAuth | None,
    metrics: Metrics | None = None,
) -> list[str]:
    """Register what ``add(server)`` would, guarded (and counted, with ``metrics``); returns
    the service names added."""
    capture = _Capture()
    add(capture)
    if capture.generic and not capture.services:  # stubs from a grpcio-tools before 1.62
        raise RuntimeError("a service registers only generic handlers; regenerate its stubs")
    for name, handlers in capture.services:
        guarded = {
            method: _guard(
                h, _message_name(h, f"{name}/{method} request"), f"{name}/{method}", auth, metrics
            )
            for method, h in handlers.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, guarded),))
        server.add_registered_method_handlers(name, guarded)
    return [name for name, _ in capture.services]
