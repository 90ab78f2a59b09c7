"""Every router kind × the tfidf and minilm featurizers (and KNN over the static encoder, whose
build takes half a minute): train a bundle with routeiq-bundle, serve it from the real gRPC
server, and route with it."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from converters.cli import main as bundle_main
from converters.datasets.synthetic import MODELS, write_synthetic
from converters.routers import KINDS
from router_service.config import Settings
from router_service.proto import pb, pb_grpc

pytestmark = pytest.mark.integration

PROMPTS = [
    "Write a Python function that sorts a list of strings by length.",
    "What is the capital of Peru?",
    "Solve for x: 3x + 7 = 40.",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("kinds") / "synthetic.csv", n=150)


@pytest.mark.parametrize(
    ("kind", "featurizer"),
    [(k, f) for f in ("tfidf", "minilm") for k in KINDS] + [("knn", "static")],
)
async def test_train_serve_route(
    kind: str,
    featurizer: str,
    data: Path,
    tmp_path: Path,
    start_server: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> None:
    out = tmp_path / f"{kind}-{featurizer}"
    params = '{"max_iter": 200}' if kind == "mlp" else "{}"
    assert (
        bundle_main(
            [
                "train",
                "--data",
                str(data),
                "--format",
                "wide",
                "--router",
                kind,
                "--featurizer",
                featurizer,
                "--svd-dims",
                "32",
                "--params",
                params,
                "--out",
                str(out),
                "--name",
                f"{kind}-{featurizer}",
            ]
        )
        == 0
    )
    # the path is under test here, not its speed: a generous featurizer time limit
    settings = make_settings(bundles=[str(out)], engine={"offload_timeout_ms": 5000})
    server = await start_server(settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        candidates = [pb.Candidate(name=m) for m in MODELS]
        for prompt in PROMPTS:
            reply = await stub.Route(
                pb.RouteRequest(
                    prompt=prompt, candidates=candidates, policy=pb.Policy(cost_weight=0.0)
                )
            )
            assert reply.source == pb.MODEL, reply.reason
            assert reply.router == f"{kind}-{featurizer}"
            assert reply.model in MODELS
            assert all(0.0 <= s.quality <= 1.5 for s in reply.scores)
