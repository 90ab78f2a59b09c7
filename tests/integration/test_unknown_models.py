"""Candidates a per-model router was not trained on, over the real gRPC server: aliases from
the service config (Router API and ext_proc), and the bundle's price prior."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from converters.cli import main as bundle_main
from converters.datasets.synthetic import write_synthetic
from router_service._proto.envoy.config.core.v3 import base_pb2 as core
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from router_service.bundles.manifest import PricePriorSpec
from router_service.bundles.registry import load_routers
from router_service.config import load_settings
from router_service.errors import BundleError, ConfigError
from router_service.proto import pb, pb_grpc
from router_service.strategies.registry import StrategyRegistry
from tests.support.bundles import embedding_bundle

pytestmark = pytest.mark.integration

ALIASES = {"acme/small": "small", "acme/big": "large"}


def emb(i: int) -> pb.Embedding:
    values = [0.0] * 4
    values[i] = 1.0  # makes model i of the bundle the best
    return pb.Embedding(values=values)


async def test_aliases_route_deployments_as_the_models_they_stand_for(
    start_server: Callable[[Any], Any], make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    bundle = embedding_bundle(tmp_path / "emb")
    settings = make_settings(bundles=[str(bundle)], aliases={"emb-linear": ALIASES})
    server = await start_server(settings)
    cands = [pb.Candidate(name="acme/small"), pb.Candidate(name="acme/big")]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        info = {r.name: r for r in (await stub.ListRouters(pb.ListRoutersRequest())).routers}
        assert dict(info["emb-linear"].aliases) == ALIASES
        big = await stub.Route(
            pb.RouteRequest(embedding=emb(2), candidates=cands, policy=pb.Policy(cost_weight=0))
        )
        assert (big.model, big.source) == ("acme/big", pb.MODEL), big.reason
        assert big.scores[1].quality > 0.9 and big.scores[1].basis == pb.PREDICTED
        assert big.scores[1].cost == pytest.approx(2.0)  # the bundle's cost of "large"
        small = await stub.Route(pb.RouteRequest(embedding=emb(0), candidates=cands))
        assert small.model == "acme/small"


def test_wrong_aliases_stop_the_start_with_what_is_wrong(tmp_path: Path) -> None:
    bundle = str(embedding_bundle(tmp_path / "emb"))
    registry = StrategyRegistry(entry_points_=False)
    wrong_target = load_settings(bundles=[bundle], aliases={"emb-linear": {"x": "gpt-9"}})
    with pytest.raises(BundleError, match="not trained on: x -> gpt-9; its models: small"):
        load_routers(wrong_target, registry)
    no_router = load_settings(bundles=[bundle], aliases={"nope": {"x": "small"}})
    with pytest.raises(ConfigError, match="not loaded bundles: nope"):
        load_routers(no_router, registry)
    shadow = load_settings(bundles=[bundle], aliases={"emb-linear": {"large": "small"}})
    with pytest.raises(BundleError, match="rename its own models: large"):
        load_routers(shadow, registry)


async def test_a_priced_unknown_candidate_gets_the_price_prior(
    start_server: Callable[[Any], Any], make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    prior = PricePriorSpec(prices=[0.1, 2.0], quality=[0.3, 0.8], mean_quality=0.5)
    bundle = embedding_bundle(tmp_path / "emb", price_prior=prior)
    server = await start_server(make_settings(bundles=[str(bundle)]))
    new = pb.Candidate(name="acme/new", input_price_per_mtok=2.0, output_price_per_mtok=2.0)
    cands = [pb.Candidate(name="small"), new, pb.Candidate(name="acme/unpriced")]
    lam0 = pb.Policy(cost_weight=0.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        # the prompt suits "large", which is not a candidate: the prior (0.8 at $2, plus this
        # prompt's shift) beats what "small" is predicted to do
        reply = await stub.Route(pb.RouteRequest(embedding=emb(2), candidates=cands, policy=lam0))
        assert (reply.model, reply.source) == ("acme/new", pb.MODEL), reply.reason
        assert "price prior for 1 unknown" in reply.reason
        small, acme, unpriced = reply.scores
        assert small.basis == pb.PREDICTED and acme.basis == pb.PRICE_PRIOR
        assert acme.quality == pytest.approx(0.8 + (0.993 + 0.269 * 2) / 3 - 0.5, abs=0.01)
        assert unpriced.score == float("-inf") and not unpriced.HasField("quality")
        # a prompt "small" is predicted to master: the known model wins
        mastered = await stub.Route(
            pb.RouteRequest(embedding=emb(0), candidates=cands, policy=lam0)
        )
        assert mastered.model == "small"
        # no known model among the candidates: the fallback, as without a prior
        alone = await stub.Route(pb.RouteRequest(embedding=emb(0), candidates=[new]))
        assert alone.source == pb.FALLBACK


async def test_ext_proc_routes_aliased_candidates_with_the_learned_router(
    start_server: Callable[[Any], Any],
    make_settings: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("alias-ext-proc")
    data = write_synthetic(tmp / "synthetic.csv", n=300)
    argv = ["train", "--data", str(data), "--format", "wide", "--router", "linear"]
    assert bundle_main([*argv, "--svd-dims", "32", "--out", str(tmp / "b"), "--name", "syn"]) == 0
    aliases = {"syn": {"acme/coder": "coder", "acme/frontier": "frontier"}}
    route = {
        "name": "all",
        "router": "syn",
        "candidates": ["acme/coder", "acme/frontier"],
        "policy": {"cost_weight": 0.0},
    }
    settings = make_settings(
        bundles=[str(tmp / "b")], aliases=aliases, ext_proc={"routes": [route]}
    )
    server = await start_server(settings)
    body = {"model": "auto", "messages": [{"role": "user", "content": "Write a Python sort."}]}
    messages = [
        ep.ProcessingRequest(
            request_headers=ep.HttpHeaders(
                headers=core.HeaderMap(
                    headers=[core.HeaderValue(key=":path", raw_value=b"/v1/chat/completions")]
                )
            )
        ),
        ep.ProcessingRequest(
            request_body=ep.HttpBody(body=json.dumps(body).encode(), end_of_stream=True)
        ),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = ep_grpc.ExternalProcessorStub(channel).Process(iter(messages), timeout=5)
        replies = [reply async for reply in call]
    routed = replies[1].request_body.response
    set_headers = routed.header_mutation.set_headers
    headers = {h.header.key: h.header.raw_value.decode() for h in set_headers}
    assert headers["x-routeiq-source"] == "MODEL"  # the aliases made them known models
    assert json.loads(routed.body_mutation.body)["model"] == headers["x-routeiq-model"]
    assert headers["x-routeiq-model"] in ("acme/coder", "acme/frontier")
