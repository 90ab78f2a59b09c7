"""A MiniLM bundle serves as it was trained: with default settings, under 8 concurrent
clients, its answers come from the model, not from the fallback. The bundle records its
featurizer's measured cost and the service sizes the router's time budget from it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from converters.cli import main as bundle_main
from converters.datasets.synthetic import MODELS, write_synthetic
from router_service.bundles.verify import verify_bundle
from router_service.config import Settings
from router_service.proto import pb, pb_grpc

pytestmark = pytest.mark.integration

QUESTIONS = [
    "Write a Python function that sorts a list of strings by length.",
    "What is the capital of Peru?",
    "Solve for x: 3x + 7 = 40.",
    "Summarise the plot of Hamlet in two sentences.",
]


async def test_a_minilm_bundle_answers_from_the_model_under_8_clients(
    tmp_path: Path,
    start_server: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
) -> None:
    data = write_synthetic(tmp_path / "synthetic.csv", n=150)
    out = tmp_path / "minilm"
    argv = ["train", "--data", str(data), "--format", "wide", "--router", "linear"]
    assert bundle_main([*argv, "--featurizer", "minilm", "--out", str(out)]) == 0
    cost = verify_bundle(out, 1 << 30).manifest.featurizer.cost_ms_p99
    assert cost is not None and cost > 0
    server = await start_server(make_settings(bundles=[str(out)]))  # engine defaults
    assert server.engine.budget_s(server.engine.resolve("")) > 0.05  # sized from the cost
    candidates = [pb.Candidate(name=m) for m in MODELS]

    async def client(stub: pb_grpc.RouterStub, c: int) -> list[int]:
        sources = []
        for k in range(5):  # distinct prompts: every call is a miss
            prompt = f"{QUESTIONS[(c + k) % len(QUESTIONS)]} (client {c}, question {k})"
            reply = await stub.Route(pb.RouteRequest(prompt=prompt, candidates=candidates))
            sources.append(reply.source)
        return sources

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        results = await asyncio.gather(*(client(stub, c) for c in range(8)))
    sources = [s for r in results for s in r]
    assert sources == [pb.MODEL] * 40, [pb.Source.Name(s) for s in sources]
