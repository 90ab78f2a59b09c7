"""Requests several tests send to the default bundle (a cache miss, a hit, a fallback over
models it does not know, a refused request), and a server's /metrics text."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import grpc
import pytest

from router_service.proto import pb, pb_grpc

KNOWN = ("llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct")
"""Two models of the default bundle."""


class Answers(NamedTuple):
    miss: pb.RouteResponse
    hit: pb.RouteResponse
    fallback: pb.RouteResponse
    refused: grpc.aio.AioRpcError


def route_request(*names: str) -> pb.RouteRequest:
    return pb.RouteRequest(
        prompt="how many moons does mars have?",
        candidates=[pb.Candidate(name=n) for n in names],
    )


async def route_four_ways(stub: pb_grpc.RouterStub) -> Answers:
    """The same prompt twice over the default bundle's models (a miss, then a cache hit),
    once over unknown models (the fallback answers) and once with no candidates (refused)."""
    miss = await stub.Route(route_request(*KNOWN), timeout=10)
    hit = await stub.Route(route_request(*KNOWN), timeout=10)
    fallback = await stub.Route(route_request("nobody-knows-a", "nobody-knows-b"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Route(route_request(), timeout=10)  # no candidates
    assert (miss.source, hit.source, fallback.source) == (pb.MODEL, pb.CACHE, pb.FALLBACK)
    return Answers(miss, hit, fallback, refused.value)


def metrics_text(port: int) -> str:
    """The Prometheus text a server's metrics endpoint on ``port`` serves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
    return text


async def router_info(stub: pb_grpc.RouterStub, name: str) -> pb.RouterInfo:
    """The router ``name`` as ListRouters describes it."""
    listed = await stub.ListRouters(pb.ListRoutersRequest(), timeout=5)
    return next(r for r in listed.routers if r.name == name)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll ``check`` every 50 ms until it is true; fails the test past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s"
        await asyncio.sleep(0.05)
