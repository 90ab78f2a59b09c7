"""TLS and mutual TLS on the real server, with certificates from trustme: real handshakes,
refusals, a plaintext health port for probes, and rotation without dropping calls."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_service.client import ClientTLS, RouterClient
from router_service.config import Settings
from router_service.errors import ConfigError
from router_service.proto import pb, pb_grpc
from router_service.server import RouterServer
from tests.support.load import RouteLoad

NAME = "routeiq.internal"


def write_cert(cert: trustme.LeafCert, cert_path: Path, key_path: Path) -> None:
    """Replace both files the way a rotation tool does: write beside, then rename."""
    for pem, path in ((cert.private_key_pem, key_path), (None, cert_path)):
        tmp = path.with_suffix(".tmp")
        if pem is None:
            tmp.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        else:
            tmp.write_bytes(pem.bytes())
        tmp.replace(path)


def handshake(port: int, ca: trustme.CA, newest: ssl.TLSVersion | None = None) -> tuple[str, bytes]:
    """A new TLS handshake with a plain client trusting ``ca``: the protocol version and the
    DER certificate the server presented. With ``newest`` the client offers at most that
    version and allows old ones on its side, so a refusal is the server's."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if newest is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = newest
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return str(tls.version()), der


def served_certificate(port: int, ca: trustme.CA) -> bytes:
    """The DER certificate the server presents at a new handshake."""
    return handshake(port, ca)[1]


def route_request(request_id: str) -> pb.RouteRequest:
    return pb.RouteRequest(
        request_id=request_id,
        prompt="hello",
        candidates=[pb.Candidate(name="a"), pb.Candidate(name="b")],
        router="round-robin",
    )


async def health_status(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = trustme.CA()
    cert = ca.issue_cert(NAME)
    paths = {"cert": tmp_path / "server.pem", "key": tmp_path / "server.key"}
    write_cert(cert, paths["cert"], paths["key"])
    client_ca = trustme.CA()
    client = client_ca.issue_cert("edge-client")
    client_paths = {"cert": tmp_path / "client.pem", "key": tmp_path / "client.key"}
    write_cert(client, client_paths["cert"], client_paths["key"])
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    (tmp_path / "client-ca.pem").write_bytes(client_ca.cert_pem.bytes())
    return {"ca": ca, "paths": paths, "client": client_paths, "dir": tmp_path}


def tls_creds(pki: dict[str, Any], *, client: bool = False) -> ClientTLS:
    d = pki["dir"]
    return ClientTLS(
        ca_file=d / "ca.pem",
        cert_file=pki["client"]["cert"] if client else None,
        key_file=pki["client"]["key"] if client else None,
        server_name=NAME,
    )


async def test_tls_refuses_plaintext_and_wrong_ca_and_serves_health_in_plaintext(
    pki: dict[str, Any], make_settings: Callable[..., Settings], start_server: Any
) -> None:
    paths = pki["paths"]
    server: RouterServer = await start_server(
        make_settings(
            tls={"cert_file": str(paths["cert"]), "key_file": str(paths["key"]), "health_port": 0}
        )
    )
    target = f"127.0.0.1:{server.port}"
    tls = tls_creds(pki)
    async with grpc.aio.secure_channel(target, tls.credentials(), options=tls.options()) as ch:
        answer = await pb_grpc.RouterStub(ch).Route(route_request("r1"), timeout=5)
        assert answer.model in ("a", "b")
    async with grpc.aio.insecure_channel(target) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as plain:
            await pb_grpc.RouterStub(ch).Route(route_request("r2"), timeout=3)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    other = ClientTLS(ca_file=None, server_name=NAME)  # system roots: not our CA
    async with grpc.aio.secure_channel(target, other.credentials(), options=other.options()) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as wrong_ca:
            await pb_grpc.RouterStub(ch).Route(route_request("r3"), timeout=3)
    assert wrong_ca.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.health_port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as ch:
        assert await health_status(ch) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as only_health:
            await pb_grpc.RouterStub(ch).Route(route_request("r4"), timeout=3)
    assert only_health.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # the synchronous client (CLI) speaks TLS too
    client = await asyncio.to_thread(RouterClient, target, 5.0, tls)
    listed = await asyncio.to_thread(client.list_routers)
    client.close()
    assert listed.default_router


async def test_mutual_tls_needs_a_client_certificate_from_the_client_ca(
    pki: dict[str, Any], make_settings: Callable[..., Settings], start_server: Any
) -> None:
    paths, d = pki["paths"], pki["dir"]
    server = await start_server(
        make_settings(
            tls={
                "cert_file": str(paths["cert"]),
                "key_file": str(paths["key"]),
                "client_ca_file": str(d / "client-ca.pem"),
            }
        )
    )
    target = f"127.0.0.1:{server.port}"
    for tls, ok in (
        (tls_creds(pki), False),  # no client certificate
        (
            ClientTLS(  # a certificate the client CA did not sign (the server's own)
                ca_file=d / "ca.pem",
                cert_file=paths["cert"],
                key_file=paths["key"],
                server_name=NAME,
            ),
            False,
        ),
        (tls_creds(pki, client=True), True),
    ):
        async with grpc.aio.secure_channel(target, tls.credentials(), options=tls.options()) as ch:
            if ok:
                answer = await pb_grpc.RouterStub(ch).Route(route_request("ok"), timeout=5)
                assert answer.model in ("a", "b")
                continue
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.RouterStub(ch).Route(route_request("no"), timeout=3)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_rotation_serves_the_new_certificate_without_dropping_calls(
    pki: dict[str, Any], make_settings: Callable[..., Settings], start_server: Any
) -> None:
    paths, ca = pki["paths"], pki["ca"]
    server = await start_server(
        make_settings(
            tls={"cert_file": str(paths["cert"]), "key_file": str(paths["key"]), "reload_s": 0}
        )
    )
    before = served_certificate(server.port, ca)
    tls = tls_creds(pki)
    async with RouteLoad(
        f"127.0.0.1:{server.port}",
        route_request,
        clients=4,
        credentials=tls.credentials(),
        options=tls.options(),
    ) as load:
        await asyncio.sleep(0.3)
        write_cert(ca.issue_cert(NAME), paths["cert"], paths["key"])
        await asyncio.sleep(0.3)
        after = await asyncio.to_thread(served_certificate, server.port, ca)
        # a half-written pair (key of another certificate) is ignored: the new one stays
        paths["key"].write_bytes(trustme.CA().issue_cert(NAME).private_key_pem.bytes())
        await asyncio.sleep(0.3)
        still = await asyncio.to_thread(served_certificate, server.port, ca)
    assert before != after and still == after
    assert server.tls.reloads == 1
    assert load.stats.failures == [] and load.stats.calls > 10


def test_bad_certificate_files_stop_the_start(pki: dict[str, Any], make_settings: Any) -> None:
    paths = pki["paths"]
    wrong_key = pki["client"]["key"]
    with pytest.raises(ConfigError, match="is not the key of the certificate"):
        RouterServer(
            make_settings(tls={"cert_file": str(paths["cert"]), "key_file": str(wrong_key)})
        )
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        make_settings(tls={"cert_file": str(paths["cert"])})


def _protocol(port: int, ca: trustme.CA, newest: ssl.TLSVersion) -> str:
    """The protocol version a client offering at most ``newest`` gets, or why it got none."""
    try:
        return handshake(port, ca, newest)[0]
    except (ssl.SSLError, OSError) as exc:
        return f"refused ({type(exc).__name__})"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_below_1_2_is_refused(
    pki: dict[str, Any], make_settings: Callable[..., Settings], start_server: Any
) -> None:
    paths = pki["paths"]
    server = await start_server(
        make_settings(tls={"cert_file": str(paths["cert"]), "key_file": str(paths["key"])})
    )
    got = {
        v: await asyncio.to_thread(_protocol, server.port, pki["ca"], v)
        for v in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    }
    assert got[ssl.TLSVersion.TLSv1_1].startswith("refused"), got
    assert got[ssl.TLSVersion.TLSv1_2] == "TLSv1.2" and got[ssl.TLSVersion.TLSv1_3] == "TLSv1.3"
