"""The service's exception hierarchy.

Every error the service raises on purpose is a :class:`RouteIQError`. The engine and the
strategies know nothing about gRPC; :mod:`router_service.surfaces.status` maps these classes to
status codes in one place:

==========================  =====================
class                       gRPC status
==========================  =====================
``InvalidRequest``          ``INVALID_ARGUMENT``
``UnknownRouter``           ``INVALID_ARGUMENT``
``NotReady``                ``UNAVAILABLE``
``Overloaded``              ``RESOURCE_EXHAUSTED``
``Unauthenticated``         ``UNAUTHENTICATED``
``PermissionDenied``        ``PERMISSION_DENIED``
anything else               ``INTERNAL`` (fixed text)
==========================  =====================

Messages of :class:`InvalidRequest` are written for the caller: they say what is wrong and
never contain prompt text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "BundleError",
    "ConfigError",
    "InvalidRequest",
    "NotReady",
    "Overloaded",
    "PermissionDenied",
    "RouteIQError",
    "StrategyError",
    "Unauthenticated",
    "UnknownRouter",
    "field_problems",
]


class RouteIQError(Exception):
    """Base class of every error the service raises on purpose."""


def field_problems(errors: Iterable[Mapping[str, Any]]) -> str:
    """Validation errors (pydantic's ``exc.errors()``) as one line per field: ``where: what``.
    Values are left out: a field may hold a password or a key."""
    lines = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "(top level)"
        lines.append(f"  {where}: {error.get('msg', 'invalid')}")
    return "\n".join(lines)


class InvalidRequest(RouteIQError):
    """The caller sent something the service cannot answer; the message says what."""


class UnknownRouter(InvalidRequest):
    """The request named a router that is not loaded."""


class NotReady(RouteIQError):
    """The service is starting or shutting down; the caller should retry elsewhere."""


class Overloaded(RouteIQError):
    """A bounded queue is full; the caller should back off and retry."""


class Unauthenticated(RouteIQError):
    """No valid bearer token (auth is on); the message never repeats the token."""


class PermissionDenied(RouteIQError):
    """The caller's token does not allow what it asked for (e.g. a router)."""


class ConfigError(RouteIQError):
    """The configuration is invalid; raised at start-up only."""


class BundleError(RouteIQError):
    """A router bundle failed verification or loading; it is refused and never serves."""


class StrategyError(RouteIQError):
    """A strategy could not decide. The engine degrades to the fallback strategy."""
