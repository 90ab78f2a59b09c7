"""Bearer tokens with tenants, and malformed bodies answered as bad input, on a real server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_service.client import bearer_metadata as bearer
from router_service.config import Settings
from router_service.proto import SERVICE_NAME, pb, pb_grpc
from router_service.security.auth import hash_token
from router_service.surfaces.ext_proc import EXT_PROC_SERVICE_NAME

ACME, OPS = "acme-token-0123456789", "ops-token-9876543210"


def cheap_request(request_id: str, router: str = "cheapest", **labels: str) -> pb.RouteRequest:
    return pb.RouteRequest(
        request_id=request_id,
        prompt="hello",
        router=router,
        labels=labels,
        candidates=[
            pb.Candidate(name="a", input_price_per_mtok=0.1, output_price_per_mtok=0.1),
            pb.Candidate(name="b", input_price_per_mtok=1.0, output_price_per_mtok=1.0),
        ],
    )


@pytest.fixture
async def secured(tmp_path: Path, make_settings: Callable[..., Settings], start_server: Any) -> Any:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {
                        "sha256": hash_token(ACME),
                        "tenant": "acme",
                        "routers": ["cheapest", "round-robin"],
                    }
                ]
            }
        )
    )
    server = await start_server(
        make_settings(
            auth={
                "tokens_file": str(tokens),
                "tokens": [{"sha256": hash_token(OPS), "tenant": "ops"}],
            },
            ext_proc={"routes": [{"name": "all", "candidates": ["a", "b"]}]},
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


async def test_tokens_tenants_and_routers(secured: grpc.aio.Channel, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    stub = pb_grpc.RouterStub(secured)
    for metadata, why in (
        ((), "missing"),
        (bearer("not-a-token"), "unknown token"),
        ((("authorization", f"Basic {ACME}"),), "not a bearer token"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Route(cheap_request("r"), metadata=metadata, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert why in (refused.value.details() or "")

    answer = await stub.Route(cheap_request("r1"), metadata=bearer(ACME), timeout=5)
    assert answer.model == "a"
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.Route(cheap_request("r2", router="fixed"), metadata=bearer(ACME), timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "router 'fixed'" in (denied.value.details() or "")
    listed = await stub.ListRouters(pb.ListRoutersRequest(), metadata=bearer(ACME), timeout=5)
    assert {r.name for r in listed.routers} == {"cheapest", "round-robin"}
    everything = await stub.ListRouters(pb.ListRoutersRequest(), metadata=bearer(OPS), timeout=5)
    assert {"cheapest", "fixed", "fallback"} <= {r.name for r in everything.routers}

    # the tenant comes from the token: a forged label changes nothing. acme reports "a" failed
    # while claiming to be ops; only acme's requests skip "a".
    await stub.ReportOutcome(
        pb.ReportOutcomeRequest(request_id="r1", model="a", failed=True, labels={"tenant": "ops"}),
        metadata=bearer(ACME),
        timeout=5,
    )
    acme = await stub.Route(cheap_request("r3", tenant="ops"), metadata=bearer(ACME), timeout=5)
    ops = await stub.Route(cheap_request("r4", tenant="acme"), metadata=bearer(OPS), timeout=5)
    assert (acme.model, ops.model) == ("b", "a")

    # health and reflection need no token
    health = health_pb2_grpc.HealthStub(secured)
    status = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ACME not in logged and OPS not in logged and hash_token(ACME) not in logged


GARBAGE = [b"\xff\xff\xff", b"\x0a\xff\x01", bytes(range(7, 60)), b"\x12\x05abc"]


async def test_malformed_bodies_are_invalid_argument_for_every_method(
    secured: grpc.aio.Channel,
) -> None:
    for method in ("Route", "RouteBatch", "ListRouters", "ReportOutcome"):
        call = secured.unary_unary(f"/{SERVICE_NAME}/{method}")
        refused = 0
        for body in GARBAGE:
            try:
                await call(body, metadata=bearer(OPS), timeout=5)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, body, exc)
                assert "is not a valid routeiq.router.v1." in (exc.details() or "")
                refused += 1
            # bytes that happen to parse (e.g. as an empty ListRoutersRequest) may succeed
        assert refused >= 1, method
    stream = secured.stream_stream(f"/{EXT_PROC_SERVICE_NAME}/Process")
    call = stream(metadata=bearer(OPS), timeout=5)
    await call.write(b"\xff\xff\xff")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await call.read()
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ProcessingRequest" in (bad.value.details() or "")
    # a malformed body is checked before the token: no token, still INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as unauth:
        await secured.unary_unary(f"/{SERVICE_NAME}/Route")(b"\xff\xff", timeout=5)
    assert unauth.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_message_over_the_limit_is_resource_exhausted_and_the_server_carries_on(
    make_settings: Callable[..., Settings], start_server: Any
) -> None:
    server = await start_server(make_settings())
    limit = server.settings.server.max_message_bytes
    assert limit == 1024 * 1024
    fits = cheap_request("fits", router="cheapest")
    fits.labels["pad"] = ""
    over = pb.RouteRequest()
    over.CopyFrom(fits)
    over.labels["pad"] = "x" * (limit - fits.ByteSize() - 8)  # tag + length: a few bytes
    while over.ByteSize() <= limit:
        over.labels["pad"] += "x"
    assert over.ByteSize() == limit + 1
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Route(over, timeout=5)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await stub.Route(fits, timeout=5)).model == "a"
        health = health_pb2_grpc.HealthStub(channel)
        status = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING


async def test_per_tenant_rate_limits_with_a_retry_hint(
    make_settings: Callable[..., Settings], start_server: Any
) -> None:
    """acme may burst 5 then 0.5/s; ops has no rule of its own and gets the default (burst 50).
    With auth on, the tenant is the token's: claiming another tenant does not escape."""
    server = await start_server(
        make_settings(
            auth={
                "tokens": [
                    {"sha256": hash_token(ACME), "tenant": "acme"},
                    {"sha256": hash_token(OPS), "tenant": "ops"},
                ]
            },
            rate_limits={
                "default": {"rps": 100, "burst": 50},
                "tenants": {"acme": {"rps": 0.5, "burst": 5}},
            },
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        for i in range(5):
            await stub.Route(cheap_request(f"a{i}", tenant="ops"), metadata=bearer(ACME), timeout=5)
        call = stub.Route(cheap_request("a5"), metadata=bearer(ACME), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await call
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "tenant 'acme' is over 0.5 requests/s; retry in" in (limited.value.details() or "")
        pushback = dict(limited.value.trailing_metadata() or ())["grpc-retry-pushback-ms"]
        assert 1 <= int(pushback) <= 2000  # at most one token's time at 0.5/s
        for i in range(20):  # another tenant is not affected
            await stub.Route(cheap_request(f"o{i}"), metadata=bearer(OPS), timeout=5)
        batch = pb.RouteBatchRequest(requests=[cheap_request(f"b{i}") for i in range(6)])
        with pytest.raises(grpc.aio.AioRpcError) as over_burst:
            await stub.RouteBatch(batch, metadata=bearer(ACME), timeout=5)
        assert "6 requests at once is over the burst of 5" in (over_burst.value.details() or "")
        await asyncio.sleep(2.1)  # one token back
        await stub.Route(cheap_request("a6"), metadata=bearer(ACME), timeout=5)
