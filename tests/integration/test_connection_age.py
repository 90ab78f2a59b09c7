"""server.max_connection_age_s: the server closes a client's connection at that age (gRPC's
GOAWAY), so a client balancing over DNS re-resolves and reaches replicas added since; calls
keep working across it; unset, a connection lives on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from router_service.config import Settings
from router_service.proto import pb, pb_grpc


async def _moved_from_ready(channel: grpc.aio.Channel, within_s: float) -> bool:
    try:
        await asyncio.wait_for(
            channel.wait_for_state_change(grpc.ChannelConnectivity.READY), within_s
        )
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize("age_s", [None, 1.0])
async def test_connections_are_closed_at_their_age(
    age_s: float | None, make_settings: Callable[..., Settings], start_server: Any
) -> None:
    server = await start_server(make_settings(server={"max_connection_age_s": age_s}))
    request = pb.RouteRequest(prompt="hi", candidates=[pb.Candidate(name="a")])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        await stub.Route(request, timeout=5)
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        moved = await _moved_from_ready(channel, within_s=3.0)
        assert moved is (age_s is not None)
        answer = await stub.Route(request, timeout=5)  # a new connection when it was closed
        assert answer.model == "a"
