"""A tier bundle end to end: trained with routeiq-bundle on one set of models, served by the
real gRPC server, routing candidates it never saw by their prices; evaluated and calibrated."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from converters.cli import main as bundle_main
from converters.datasets.synthetic import write_synthetic
from router_service.bundles.verify import verify_bundle
from router_service.config import Settings
from router_service.proto import pb, pb_grpc

pytestmark = pytest.mark.integration

MATH = "Solve for x: 7x + 3 = 59."
TRIVIA = "What is the capital of Peru?"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("tier") / "synthetic.csv", n=600)


@pytest.fixture(scope="module")
def bundle(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tier-bundle") / "tier"
    argv = ["train", "--data", str(data), "--format", "wide", "--router", "tier"]
    argv += ["--svd-dims", "32", "--out", str(out), "--name", "tier"]
    assert bundle_main(argv) == 0
    return out


def test_the_bundle_records_its_ladder(bundle: Path) -> None:
    m = verify_bundle(bundle, 1 << 30).manifest
    assert (m.router_kind, m.outputs) == ("tier", "ladder_quality")
    assert m.ladder is not None and m.ladder[0] == 0.0 and m.ladder[-1] == 1.0
    rungs = m.provenance["ladder"]
    assert [r["representative"] for r in rungs][-1] == "frontier"
    assert m.provenance["target"] == "quality-share:0.97"
    assert m.provenance["router_params"]["base"] == "linear"


async def test_serves_models_it_never_saw_by_price(
    bundle: Path,
    start_server: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(bundles=[str(bundle)], engine={"offload_timeout_ms": 5000})
    server = await start_server(settings)
    cands = [
        pb.Candidate(name="acme/tiny", input_price_per_mtok=0.1, output_price_per_mtok=0.4),
        pb.Candidate(name="acme/huge", input_price_per_mtok=5.0, output_price_per_mtok=15.0),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)

        async def route(prompt: str, **policy: float) -> Any:
            return await stub.Route(
                pb.RouteRequest(prompt=prompt, candidates=cands, policy=pb.Policy(**policy))
            )

        listed = await stub.ListRouters(pb.ListRoutersRequest())
        tier = next(r for r in listed.routers if r.name == "tier")
        assert (tier.kind, list(tier.models)) == ("tier", [])  # any models
        hard, easy = await route(MATH, cost_weight=0.0), await route(TRIVIA, cost_weight=0.0)
        for reply in (hard, easy):
            assert (reply.source, reply.router) == (pb.MODEL, "tier"), reply.reason
            assert "price position" in reply.reason
        gain = {r.model: r.quality for r in hard.scores}
        easy_gain = {r.model: r.quality for r in easy.scores}
        # the synthetic data: the frontier model fixes math, trivia is easy for all
        assert (
            gain["acme/huge"] - gain["acme/tiny"] > easy_gain["acme/huge"] - easy_gain["acme/tiny"]
        )
        assert hard.model == "acme/huge"
        cheap = await route(MATH, cost_weight=10.0)
        assert cheap.model == "acme/tiny"  # λ beyond any gain: the bottom of the ladder
        unpriced = [pb.Candidate(name="x"), pb.Candidate(name="y")]
        no_price = await stub.Route(pb.RouteRequest(prompt=MATH, candidates=unpriced))
        assert no_price.source == pb.FALLBACK and "price" in no_price.reason


def test_eval_and_calibrate_a_tier_bundle(bundle: Path, data: Path) -> None:
    argv = ["eval", "--bundle", str(bundle), "--data", str(data), "--format", "wide", "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bundle_main(argv) == 0
    r = json.loads(out.getvalue())
    assert set(r["single_models"]) == {"small-fast", "coder", "frontier"}
    assert r["oracle"]["avg_quality"] >= r["router"]["avg_quality"] > r["random"]["avg_quality"]
    argv = ["calibrate", "--bundle", str(bundle), "--data", str(data), "--format", "wide"]
    assert bundle_main([*argv, "--target", "quality-share:0.9"]) == 0
    m = verify_bundle(bundle, 1 << 30).manifest
    assert m.ladder is not None and m.provenance["calibrated"]["target"] == "quality-share:0.9"
