"""One way to build a ``grpc.aio`` server, shared by the service (its Router API port and an
ext_proc port of its own) and the benchmarks' echo server, so that the echo ceiling is measured
on a server built exactly like the service's."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from router_service.config import ServerSettings
from router_service.errors import ConfigError
from router_service.metrics import Metrics
from router_service.security.auth import TokenAuth
from router_service.surfaces.guard import add_guarded

__all__ = ["Service", "build_server", "grpc_options"]

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

Service = tuple[str, Callable[[grpc.aio.Server], None]]
"""A service to serve: its full name and the function that adds it to a server."""


def grpc_options(server: ServerSettings) -> list[tuple[str, int]]:
    """Channel arguments for the server. SO_REUSEPORT is on only for several workers, so a
    single process fails loudly on a port already in use."""
    options = [
        ("grpc.max_send_message_length", server.max_message_bytes),
        ("grpc.max_receive_message_length", server.max_message_bytes),
        ("grpc.keepalive_time_ms", server.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", server.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(server.keepalive_permit_without_calls)),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", server.min_ping_interval_ms),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.so_reuseport", int(server.workers > 1)),
    ]
    if server.max_connection_age_s is not None:
        options += [
            ("grpc.max_connection_age_ms", int(server.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(server.grace_period_s * 1000)),
        ]
    return options


def build_server(
    cfg: ServerSettings,
    services: Sequence[Service],
    health_servicer: health.aio.HealthServicer,
    *,
    port: int,
    option: str = "server.port",
    credentials: grpc.ServerCredentials | None = None,
    reflection_on: bool | None = None,
    auth: TokenAuth | None = None,
    exempt: Collection[str] = ("health", "reflection"),
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    metrics: Metrics | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A server (not started) with ``services``, the standard health service and, with
    ``cfg.reflection`` (or ``reflection_on``), reflection over all of them, listening on
    ``cfg.host:port`` (TLS with ``credentials``). Returns it and the bound port;
    :class:`ConfigError` naming ``option`` when the address is taken. Every service is added
    through :func:`add_guarded` (malformed bodies are ``INVALID_ARGUMENT``; with ``auth``, calls
    need a token, except to the services named in ``exempt``: health, reflection; with
    ``metrics``, every call is counted by method and status code)."""
    server = grpc.aio.server(
        options=grpc_options(cfg),
        maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
        interceptors=list(interceptors) or None,
    )
    for _, add in services:
        add_guarded(add, server, auth, metrics)
    add_guarded(
        lambda s: health_pb2_grpc.add_HealthServicer_to_server(health_servicer, s),
        server,
        None if "health" in exempt else auth,
        metrics,
    )
    if cfg.reflection if reflection_on is None else reflection_on:
        names = (*(name for name, _ in services), HEALTH_SERVICE, reflection.SERVICE_NAME)
        add_guarded(  # the asyncio servicer (enable_server_reflection picks by server type)
            lambda s: reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
                reflection.aio.ReflectionServicer(names), s
            ),
            server,
            None if "reflection" in exempt else auth,
        )
    address = f"{cfg.host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpc's "Failed to bind to address"
        bound = 0
    if bound == 0:
        raise ConfigError(
            f"cannot listen on {cfg.host}:{port} ({option}): the address is in use or not available"
        )
    return server, bound
