"""Deadlines are honoured: a request whose caller's deadline passes while it waits does no
work (its text is never featurized) and writes nothing to the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from router_service.bundles.base import RouterTable
from router_service.config import Settings
from router_service.proto import pb, pb_grpc
from tests.support.learned import MODELS, CountingFeaturizer, learned_router


def request(prompt: str) -> pb.RouteRequest:
    return pb.RouteRequest(
        request_id=prompt,
        prompt=prompt,
        router="ml",
        candidates=[pb.Candidate(name=m) for m in MODELS],
    )


async def test_an_expired_request_is_never_featurized_nor_cached(
    make_settings: Callable[..., Settings], start_server: Any
) -> None:
    server = await start_server(
        make_settings(engine={"executor_threads": 1, "offload_timeout_ms": 5000})
    )
    featurizer = CountingFeaturizer(delay_s=0.4)
    router = learned_router(featurizer)
    table = server.engine.table
    server.engine.install(
        RouterTable(routers={**table.routers, "ml": router}, default=table.default)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        first = asyncio.ensure_future(stub.Route(request("occupies the featurizer"), timeout=5))
        for _ in range(200):  # until the first job is running
            if featurizer.calls:
                break
            await asyncio.sleep(0.01)
        assert featurizer.calls == 1
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.Route(request("waits behind it"), timeout=0.1)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert (await first).source == pb.MODEL
        await asyncio.sleep(0.5)  # anything still queued would have run by now
        assert featurizer.calls == 1  # the expired request was dropped before its job
        again = await stub.Route(request("waits behind it"), timeout=5)
        assert again.source == pb.MODEL  # not CACHE: nothing was written for it
        assert featurizer.calls == 2
