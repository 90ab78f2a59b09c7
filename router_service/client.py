"""A small synchronous client of the Router API (command line, smoke tests), and the TLS
options every client of the service shares (the CLI, the LiteLLM plug-in, tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from router_service.proto import pb, pb_grpc

__all__ = ["ClientTLS", "RouterClient", "bearer_metadata", "parse_candidates"]


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata that carries ``token`` to the service's auth (none without one)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


@dataclass(frozen=True)
class ClientTLS:
    """How a client checks the service (``ca_file``: the CA of its certificate; unset: the
    system's roots), proves itself under mutual TLS (``cert_file`` + ``key_file``) and which
    name it expects in the certificate (``server_name``, when it differs from the target's
    host)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")

    @classmethod
    def from_env(cls, prefix: str) -> ClientTLS | None:
        """From ``{prefix}_CA``, ``_CERT``, ``_KEY``, ``_SERVER_NAME``; ``{prefix}=1`` alone
        turns TLS on with the system's roots. None when none of them is set."""
        env = os.environ
        values = {k: env.get(f"{prefix}_{k}") or None for k in ("CA", "CERT", "KEY", "SERVER_NAME")}
        if not any(values.values()) and env.get(prefix, "") not in ("1", "true", "yes"):
            return None
        return cls(
            ca_file=Path(values["CA"]) if values["CA"] else None,
            cert_file=Path(values["CERT"]) if values["CERT"] else None,
            key_file=Path(values["KEY"]) if values["KEY"] else None,
            server_name=values["SERVER_NAME"],
        )

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None) -> bytes | None:
            return None if path is None else path.read_bytes()

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )

    def options(self) -> list[tuple[str, str]]:
        return (
            []
            if self.server_name is None
            else [("grpc.ssl_target_name_override", self.server_name)]
        )


def parse_candidates(spec: str) -> list[pb.Candidate]:
    """``"a,b:0.15:0.6"`` → candidates; optional ``:input:output`` prices in USD per 1M tokens."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, *prices = item.split(":")
        if len(prices) not in (0, 2):
            raise ValueError(f"candidate {item!r}: use NAME or NAME:INPUT_PRICE:OUTPUT_PRICE")
        cand = pb.Candidate(name=name)
        if prices:
            cand.input_price_per_mtok, cand.output_price_per_mtok = map(float, prices)
        out.append(cand)
    return out


class RouterClient:
    """Blocking calls with a deadline (seconds) on one channel."""

    def __init__(
        self,
        target: str,
        timeout_s: float = 5.0,
        tls: ClientTLS | None = None,
        token: str | None = None,
    ) -> None:
        self._metadata = bearer_metadata(token)
        self._channel = (
            grpc.insecure_channel(target)
            if tls is None
            else grpc.secure_channel(target, tls.credentials(), options=tls.options())
        )
        self._stub = pb_grpc.RouterStub(self._channel)
        self._timeout = timeout_s

    def route(
        self,
        prompt: str,
        candidates: Sequence[pb.Candidate],
        router: str = "",
        cost_weight: float | None = None,
        request_id: str = "",
    ) -> pb.RouteResponse:
        """``cost_weight=None`` leaves λ unset: the router's calibrated default applies."""
        request = pb.RouteRequest(
            request_id=request_id,
            prompt=prompt,
            candidates=list(candidates),
            router=router,
            policy=pb.Policy(cost_weight=cost_weight),
        )
        return self._stub.Route(request, timeout=self._timeout, metadata=self._metadata)

    def list_routers(self) -> pb.ListRoutersResponse:
        return self._stub.ListRouters(
            pb.ListRoutersRequest(), timeout=self._timeout, metadata=self._metadata
        )

    def close(self) -> None:
        self._channel.close()
