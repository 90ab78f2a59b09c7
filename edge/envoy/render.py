"""Filling in ``edge/envoy/envoy.yaml`` (a ``string.Template``), shared by the launcher and the
tests: the plain values, the two optional blocks that secure the ext_proc stream, and the
optional OpenTelemetry tracing blocks."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path

__all__ = ["otel_tracing", "render", "router_auth", "router_tls"]


def router_tls(
    ca_file: Path, server_name: str, cert_file: Path | None = None, key_file: Path | None = None
) -> str:
    """The router cluster's ``transport_socket``: TLS to the service, checked against
    ``ca_file`` for ``server_name``; with ``cert_file`` + ``key_file`` Envoy also presents a
    client certificate (mutual TLS). One line of YAML flow style."""
    common: dict[str, object] = {
        "validation_context": {"trusted_ca": {"filename": str(ca_file)}},
        "alpn_protocols": ["h2"],
    }
    if cert_file is not None and key_file is not None:
        common["tls_certificates"] = [
            {
                "certificate_chain": {"filename": str(cert_file)},
                "private_key": {"filename": str(key_file)},
            }
        ]
    socket = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "UpstreamTlsContext",
            "sni": server_name,
            "common_tls_context": common,
        },
    }
    return "transport_socket: " + json.dumps(socket)  # JSON is YAML flow style


def router_auth(token: str) -> str:
    """The ext_proc stream's ``initial_metadata``: the service's bearer token for this edge."""
    return "initial_metadata: " + json.dumps([{"key": "authorization", "value": f"Bearer {token}"}])


def otel_tracing(
    host: str, port: int, service_name: str = "routeiq-edge-envoy", sampling_percent: float = 100.0
) -> dict[str, str]:
    """The blocks that make Envoy trace every request with its OpenTelemetry tracer, exporting
    OTLP over gRPC to ``host:port`` (a collector, or Jaeger): the connection manager's
    ``tracing`` and the collector's cluster. Envoy continues a client's W3C ``traceparent``
    and sends its own span's context on the ext_proc stream, which the service continues."""
    tracing = {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": "otlp_collector"}, "timeout": "1s"},
                "service_name": service_name,
            },
        },
        "random_sampling": {"value": sampling_percent},
    }
    http2 = {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
    endpoint = {"address": {"socket_address": {"address": host, "port_value": port}}}
    cluster = {
        "name": "otlp_collector",
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http2
        },
        "load_assignment": {
            "cluster_name": "otlp_collector",
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
    }
    return {
        "TRACING": "tracing: " + json.dumps(tracing),
        "TRACE_COLLECTOR": "- " + json.dumps(cluster),
    }


def render(
    template: str,
    values: Mapping[str, object],
    *,
    tls: str = "",
    auth: str = "",
    tracing: Mapping[str, str] | None = None,
) -> str:
    """The template with ``values`` and the optional blocks (``tls``: :func:`router_tls`,
    ``auth``: :func:`router_auth`, ``tracing``: :func:`otel_tracing`) filled in."""
    blocks = {"ROUTER_TLS": tls, "ROUTER_AUTH": auth, "TRACING": "", "TRACE_COLLECTOR": ""}
    return string.Template(template).substitute({**values, **blocks, **(tracing or {})})
