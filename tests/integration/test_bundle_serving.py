"""A real bundle served by the real gRPC server."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from router_service.config import Settings
from router_service.proto import pb, pb_grpc
from tests.support.bundles import MODELS, embedding_bundle

pytestmark = pytest.mark.integration

CANDS = [pb.Candidate(name=m) for m in MODELS]


def emb(i: int) -> pb.Embedding:
    values = [0.0] * 4
    values[i] = 1.0
    return pb.Embedding(values=values)


async def test_bundle_serves_as_default_and_caches(
    start_server: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    bundle = embedding_bundle(tmp_path / "emb", default_cost_weight=0.0)
    server = await start_server(make_settings(bundles=[str(bundle)]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        listing = await stub.ListRouters(pb.ListRoutersRequest())
        assert listing.default_router == "emb-linear"
        info = {r.name: r for r in listing.routers}["emb-linear"]
        assert (info.kind, info.version, list(info.models)) == ("linear", "v1", MODELS)
        for i, model in enumerate(MODELS):
            reply = await stub.Route(pb.RouteRequest(embedding=emb(i), candidates=CANDS))
            assert (reply.model, reply.source, reply.router) == (model, pb.MODEL, "emb-linear")
            assert reply.scores[i].quality > 0.9
        again = await stub.Route(pb.RouteRequest(embedding=emb(1), candidates=CANDS))
        assert (again.model, again.source) == ("medium", pb.CACHE)
        cheap = await stub.Route(
            pb.RouteRequest(embedding=emb(2), candidates=CANDS, policy=pb.Policy(cost_weight=1.0))
        )
        assert cheap.model == "small"
        with pytest.raises(grpc.aio.AioRpcError) as info_:
            await stub.Route(pb.RouteRequest(prompt="text", candidates=CANDS))
        assert info_.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "router 'emb-linear' needs an 'embedding' input" in (info_.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as info_:
            await stub.Route(
                pb.RouteRequest(embedding=pb.Embedding(values=[1.0, 2.0]), candidates=CANDS)
            )
        assert "needs an embedding of 4 values, got 2" in (info_.value.details() or "")


async def test_no_known_candidate_degrades_to_fallback(
    start_server: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    bundle = embedding_bundle(tmp_path / "emb")
    server = await start_server(make_settings(bundles=[str(bundle)]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await pb_grpc.RouterStub(channel).Route(
            pb.RouteRequest(
                embedding=emb(0), candidates=[pb.Candidate(name="x"), pb.Candidate(name="y")]
            )
        )
    assert (reply.model, reply.source) == ("x", pb.FALLBACK)
    assert "no candidate is a model this router knows" in reply.reason
