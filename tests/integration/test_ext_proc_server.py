"""The ext_proc service in a real ``grpc.aio`` server on 127.0.0.1: on the Router API's port
(the default) or on its own (``ext_proc.port``), with health and reflection, or switched off."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from router_service._proto.envoy.config.core.v3 import base_pb2 as core
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from router_service.config import Settings
from router_service.proto import SERVICE_NAME
from router_service.server import RouterServer
from router_service.surfaces.ext_proc import EXT_PROC_SERVICE_NAME

pytestmark = pytest.mark.integration

PRICED = [{"name": "big", "input_price_per_mtok": 5}, {"name": "tiny", "input_price_per_mtok": 0.1}]
EXT_PROC = {"routes": [{"name": "all", "candidates": PRICED}]}


async def route_over(target: str) -> list[Any]:
    """One HTTP request as Envoy sends it, over a real channel."""
    header_map = core.HeaderMap(
        headers=[
            core.HeaderValue(key=":path", raw_value=b"/v1/chat/completions"),
            core.HeaderValue(key="x-routeiq-model", raw_value=b"big"),
        ]
    )
    payload = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    messages = [
        ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=header_map)),
        ep.ProcessingRequest(
            request_body=ep.HttpBody(body=json.dumps(payload).encode(), end_of_stream=True)
        ),
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        call = ep_grpc.ExternalProcessorStub(channel).Process(iter(messages), timeout=5)
        return [reply async for reply in call]


async def open_stream(target: str) -> None:
    """A stream that sends nothing, so no write can race the server's answer."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = ep_grpc.ExternalProcessorStub(channel).Process(iter(()), timeout=5)
        _ = [reply async for reply in call]


async def services(target: str) -> set[str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
            return {s.name for s in reply.list_services_response.service}
    raise AssertionError("no reflection answer")


async def health(target: str, service: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def assert_routed(replies: list[Any], model: str) -> None:
    removed = replies[0].request_headers.response.header_mutation.remove_headers
    assert list(removed) == ["x-routeiq-model"]
    routed = replies[1].request_body.response
    assert json.loads(routed.body_mutation.body)["model"] == model
    assert routed.clear_route_cache


async def test_ext_proc_shares_the_router_api_port_by_default(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    server: RouterServer = await start_server(make_settings(ext_proc=EXT_PROC))
    target = f"127.0.0.1:{server.port}"
    assert server.ext_proc_port == server.port
    assert_routed(await route_over(target), "tiny")  # the default router: cheapest
    assert {SERVICE_NAME, EXT_PROC_SERVICE_NAME} <= await services(target)
    assert await health(target, EXT_PROC_SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING


async def test_ext_proc_on_its_own_port(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    server: RouterServer = await start_server(make_settings(ext_proc={**EXT_PROC, "port": 0}))
    assert server.ext_proc_port not in (None, 0, server.port)
    ext_target = f"127.0.0.1:{server.ext_proc_port}"
    assert_routed(await route_over(ext_target), "tiny")
    assert await services(ext_target) == {
        EXT_PROC_SERVICE_NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert await health(ext_target, "") == health_pb2.HealthCheckResponse.SERVING
    api_target = f"127.0.0.1:{server.port}"
    assert EXT_PROC_SERVICE_NAME not in await services(api_target)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await open_stream(api_target)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED

    await server.stop(0)  # both servers stop
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await route_over(ext_target)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_ext_proc_can_be_switched_off(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> None:
    server: RouterServer = await start_server(make_settings(ext_proc={"enabled": False}))
    target = f"127.0.0.1:{server.port}"
    assert server.ext_proc_port is None
    assert EXT_PROC_SERVICE_NAME not in await services(target)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await open_stream(target)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_a_route_naming_an_unknown_router_stops_the_start(
    make_settings: Callable[..., Settings],
) -> None:
    from router_service.errors import ConfigError

    bad = {"routes": [{"name": "r", "candidates": ["a"], "router": "missing"}]}
    server = RouterServer(make_settings(ext_proc=bad))
    with pytest.raises(ConfigError, match="unknown router 'missing'"):
        await server.start()
    await server.stop(0)
