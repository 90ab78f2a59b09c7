"""The Router API over a real grpc.aio server on 127.0.0.1:0."""

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from router_service.config import Settings
from router_service.proto import pb, pb_grpc

pytestmark = pytest.mark.integration

AB = [
    pb.Candidate(name="a", input_price_per_mtok=1.0, output_price_per_mtok=2.0),
    pb.Candidate(name="b", input_price_per_mtok=0.1, output_price_per_mtok=0.2),
]


async def test_route_returns_one_of_the_candidates(router_stub: pb_grpc.RouterStub) -> None:
    reply = await router_stub.Route(pb.RouteRequest(request_id="q1", prompt="hi", candidates=AB))
    assert reply.model == "b"
    assert (reply.router, reply.router_version, reply.source) == ("cheapest", "static", pb.STATIC)
    assert reply.request_id == "q1"
    assert [s.model for s in reply.scores] == ["a", "b"]
    assert reply.scores[1].cost == pytest.approx(0.15)
    assert reply.latency_us > 0


async def test_route_with_messages_and_named_router(router_stub: pb_grpc.RouterStub) -> None:
    convo = pb.Conversation(turns=[pb.ChatMessage(role="user", content="hello")])
    seen = set()
    for _ in range(4):
        reply = await router_stub.Route(
            pb.RouteRequest(messages=convo, candidates=AB, router="round-robin")
        )
        seen.add(reply.model)
    assert seen == {"a", "b"}


def _bad(**kw: Any) -> pb.RouteRequest:
    base: dict[str, Any] = {"prompt": "hello", "candidates": AB}
    base.update(kw)
    return pb.RouteRequest(**base)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_bad(candidates=[]), "no candidates: give at least one model in 'candidates'"),
        (_bad(router="nope"), "unknown router 'nope'; loaded: cheapest, fallback, fixed"),
        (_bad(prompt="x" * 100_001), "prompt is 100001 characters, over the limit of 100000"),
        (_bad(prompt=""), "empty prompt: 'prompt' has no non-whitespace text"),
        (pb.RouteRequest(candidates=AB), "no input: set one of 'prompt', 'messages'"),
        (
            pb.RouteRequest(embedding=pb.Embedding(values=[0.5, math.nan]), candidates=AB),
            "embedding[1] is nan: values must be finite",
        ),
        (_bad(policy=pb.Policy(cost_weight=-2)), "policy.cost_weight is -2.0: must be finite"),
        (
            _bad(candidates=[pb.Candidate(name="a"), pb.Candidate(name="a")]),
            "candidate 'a' is listed twice",
        ),
    ],
    ids=[
        "no-candidates",
        "unknown-router",
        "too-long",
        "empty",
        "no-input",
        "nan",
        "neg-weight",
        "duplicate",
    ],
)
async def test_bad_input_is_invalid_argument_with_message(
    router_stub: pb_grpc.RouterStub, request_: pb.RouteRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await router_stub.Route(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")


async def test_batch_answers_in_order(router_stub: pb_grpc.RouterStub) -> None:
    reqs = [
        pb.RouteRequest(request_id=f"b{i}", prompt=f"p{i}", candidates=AB, router="round-robin")
        for i in range(6)
    ]
    reply = await router_stub.RouteBatch(pb.RouteBatchRequest(requests=reqs))
    assert [r.request_id for r in reply.responses] == [f"b{i}" for i in range(6)]
    assert [r.model for r in reply.responses] == ["a", "b"] * 3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await router_stub.RouteBatch(pb.RouteBatchRequest(requests=[*reqs, _bad(candidates=[])]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[6]: no candidates" in (info.value.details() or "")


async def test_list_routers(router_stub: pb_grpc.RouterStub) -> None:
    reply = await router_stub.ListRouters(pb.ListRoutersRequest())
    assert reply.default_router == "cheapest"
    assert {r.name: (r.kind, r.version) for r in reply.routers}["fixed"] == ("fixed", "static")
    assert [r.name for r in reply.routers if r.is_default] == ["cheapest"]


async def test_report_outcome_is_persisted_and_benches_failed_model(
    start_server: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    server = await start_server(make_settings())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        route = pb.RouteRequest(
            prompt="p", candidates=AB, router="fallback", labels={"tenant": "t1"}
        )
        other = pb.RouteRequest(prompt="p", candidates=AB, router="fallback")
        assert (await stub.Route(route)).model == "a"
        await stub.ReportOutcome(
            pb.ReportOutcomeRequest(
                request_id="q9",
                model="a",
                failed=True,
                latency_ms=30000,
                cost_usd=0.0,
                router="fallback",
                labels={"tenant": "t1"},
            )
        )
        await stub.ReportOutcome(
            pb.ReportOutcomeRequest(
                request_id="q10", model="b", quality=0.9, latency_ms=850.5, cost_usd=0.0004
            )
        )
        assert (await stub.Route(route)).model == "b"  # benched for t1 ...
        assert (await stub.Route(other)).model == "a"  # ... and for nobody else
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ReportOutcome(
                pb.ReportOutcomeRequest(request_id="q", model="a", quality=1.5)
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "quality is 1.5" in (info.value.details() or "")
    await server.outcomes.flush()
    rows = [json.loads(x) for x in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert [(r["request_id"], r["model"], r["failed"]) for r in rows] == [
        ("q9", "a", True),
        ("q10", "b", False),
    ]
    assert rows[1]["quality"] == 0.9
    assert rows[0]["labels"] == {"tenant": "t1"}


async def test_health_and_reflection(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    server = await start_server(make_settings())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "routeiq.router.v1.Router"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = refl.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        answer = await call.read()
        await call.done_writing()
        names = {s.name for s in answer.list_services_response.service}
        assert {"routeiq.router.v1.Router", "grpc.health.v1.Health"} <= names


async def test_reflection_can_be_turned_off(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    server = await start_server(make_settings(server={"reflection": False}))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = refl.ServerReflectionInfo()
        with pytest.raises(grpc.aio.AioRpcError) as info:  # the write may already see it
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            await call.read()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_over_max_concurrent_rpcs_is_resource_exhausted(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        server={"max_concurrent_rpcs": 2},
        strategies={"slow": "tests.support.strategies:Slow"},
        routers=[{"name": "slow", "strategy": "slow", "params": {"delay_s": 0.5}}],
        default_router="slow",
        engine={"offload_timeout_ms": 5000},
    )
    server = await start_server(settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        calls = [stub.Route(pb.RouteRequest(prompt="p", candidates=AB)) for _ in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    codes = sorted(r.code().name if isinstance(r, grpc.aio.AioRpcError) else "OK" for r in results)
    assert codes.count("OK") == 2
    assert codes.count("RESOURCE_EXHAUSTED") == 3


async def test_internal_errors_hide_details(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    # A broken strategy degrades (never errors); a broken fallback too is an INTERNAL error
    # whose text is fixed.
    settings = make_settings(
        strategies={"broken": "tests.support.strategies:Broken"},
        routers=[{"name": "b", "strategy": "broken"}],
        default_router="b",
        fallback_strategy="broken",
    )
    server = await start_server(settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.RouterStub(channel).Route(pb.RouteRequest(prompt="p", candidates=AB))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error; the service logged the details"
