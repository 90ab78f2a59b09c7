"""Filling in ``edge/envoy/envoy.yaml`` (a ``string.Template``), shared by the launcher and the
tests: the plain values, and the two optional blocks that secure the ext_proc stream."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path

__all__ = ["render", "router_auth", "router_tls"]


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


def render(template: str, values: Mapping[str, object], *, tls: str = "", auth: str = "") -> str:
    return string.Template(template).substitute({**values, "ROUTER_TLS": tls, "ROUTER_AUTH": auth})
