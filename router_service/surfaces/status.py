"""The one place where exceptions become gRPC status codes.

Callers see the message of a :class:`RouteIQError` (written for them); any other exception is
logged here and answered ``INTERNAL`` with a fixed text, never ``str(exc)`` or a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from router_service.errors import (
    InvalidRequest,
    NotReady,
    Overloaded,
    PermissionDenied,
    RouteIQError,
    Unauthenticated,
)

__all__ = ["INTERNAL_MESSAGE", "grpc_errors", "status_for"]

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; the service logged the details"
_CODES: tuple[tuple[type[RouteIQError], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def grpc_errors(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Wrap a servicer method so that every exception leaves as a proper status."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
            retry_after_s = getattr(exc, "retry_after_s", None)  # a rate limit's hint
            if retry_after_s is not None:
                pushback = str(max(1, round(retry_after_s * 1000)))
                context.set_trailing_metadata((("grpc-retry-pushback-ms", pushback),))
            if code is grpc.StatusCode.INTERNAL:
                log.exception("unhandled error in %s", handler.__name__)
            await context.abort(code, message)
            raise AssertionError("unreachable: abort() raises") from None

    return wrapper
