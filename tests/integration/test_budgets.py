"""Budgets on live traffic, through a real server and the default learned router: traffic whose
mix shifts half-way (easier tasks, then harder ones) keeps the expensive model at 20 % of the
decisions within ±3 points in every window of 1,000 requests once the controller has settled,
where the λ that held it on the easy half lets the share drift on the hard half."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest

from converters.datasets import SHIPPED_DATA, load_llmrouter
from router_service.bundles.registry import load_routers
from router_service.config import Settings
from router_service.errors import ConfigError
from router_service.proto import pb, pb_grpc
from router_service.server import RouterServer
from router_service.strategies.registry import StrategyRegistry

ROUTER = "llmrouter-knn-tfidf"
CHEAP, EXPENSIVE = "llama-3.1-8b-instruct", "llama-3.3-nemotron-super-49b-v1"
EASY = ("mmlu", "mbpp", "gsm8k", "arc_challenge", "commonsense_qa")
HARD = ("math", "agentverse-mgsm", "human_eval", "agentverse-logicgrid")
EASY_N, HARD_N, WINDOW = 2500, 2300, 1000
BUDGET = {
    "router": ROUTER,
    "max_share": 0.2,
    "models": [EXPENSIVE],
    "window": WINDOW,
    "min_samples": 200,
    "update_every": 50,
}


def _traffic() -> list[str]:
    """2,500 prompts of the easier tasks, then 2,300 of the harder ones (each half shuffled
    with a fixed seed; the harder tasks have fewer prompts, so some come twice)."""
    data = load_llmrouter(SHIPPED_DATA / "llmrouter")
    rng = random.Random(7)
    tasks = data.task or ()

    def pick(names: Sequence[str], n: int) -> list[str]:
        pool = [q for q, t in zip(data.queries, tasks, strict=True) if t in names]
        out: list[str] = []
        while len(out) < n:
            out += rng.sample(pool, min(len(pool), n - len(out)))
        return out

    return pick(EASY, EASY_N) + pick(HARD, HARD_N)


def _candidates() -> list[pb.Candidate]:
    return [
        pb.Candidate(name=CHEAP, input_price_per_mtok=0.2, output_price_per_mtok=0.2),
        pb.Candidate(name=EXPENSIVE, input_price_per_mtok=0.9, output_price_per_mtok=0.9),
    ]


async def _route_all(
    settings: Settings, prompts: list[str], cost_weight: float | None = None
) -> list[pb.RouteResponse]:
    """Every prompt through a real server, in order, 50 per RouteBatch."""
    server = RouterServer(settings)
    await server.start()
    answers: list[pb.RouteResponse] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.RouterStub(channel)
            for i in range(0, len(prompts), 50):
                batch = [
                    pb.RouteRequest(
                        prompt=p,
                        candidates=_candidates(),
                        policy=pb.Policy(cost_weight=cost_weight)
                        if cost_weight is not None
                        else None,
                    )
                    for p in prompts[i : i + 50]
                ]
                reply = await stub.RouteBatch(pb.RouteBatchRequest(requests=batch), timeout=60)
                answers.extend(reply.responses)
    finally:
        await server.stop(0)
    return answers


def _share(answers: Sequence[pb.RouteResponse]) -> float:
    return float(np.mean([a.model == EXPENSIVE for a in answers]))


def test_a_max_share_budget_holds_as_the_mix_shifts(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    prompts = _traffic()
    engine = {"offload_timeout_ms": 5000}  # no fallbacks: every answer is the router's
    budgeted = make_settings(bundles=[str(default_bundle)], engine=engine, budgets=[BUDGET])
    answers = asyncio.run(_route_all(budgeted, prompts))
    assert all(a.source in (pb.MODEL, pb.CACHE) for a in answers)

    # once the window holds only easy traffic, and again only hard traffic
    windows = [(WINDOW, 2 * WINDOW), (EASY_N + WINDOW, EASY_N + 2 * WINDOW)]
    held = [_share(answers[a:b]) for a, b in windows]
    assert all(abs(s - 0.2) <= 0.03 for s in held), held

    # the λ in force is in the answer's reason; the one that held the easy half, fixed,
    # drifts on the hard half
    lam_easy = _reason_lambda(answers[EASY_N - 1].reason)
    plain = make_settings(bundles=[str(default_bundle)], engine=engine)
    fixed = asyncio.run(_route_all(plain, prompts, cost_weight=lam_easy))
    drift = _share(fixed[windows[1][0] : windows[1][1]])
    assert drift > 0.3, (lam_easy, drift)
    # and without a budget nothing is rewritten
    assert "budget" not in fixed[0].reason


def _reason_lambda(reason: str) -> float:
    found = re.search(r"budget max_share 0\.2 of \S+: λ ([0-9.e+-]+)", reason)
    assert found, reason
    return float(found.group(1))


def test_a_budget_must_name_a_loaded_learned_router(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        bundles=[str(default_bundle)], budgets=[{**BUDGET, "router": "cheapest"}]
    )
    with pytest.raises(ConfigError, match="'cheapest' is not a loaded learned router"):
        load_routers(settings, StrategyRegistry(settings.strategies))


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"router": ROUTER}, "exactly one of"),
        ({"router": ROUTER, "max_share": 0.2}, "needs the models"),
        ({"router": ROUTER, "min_quality": 0.9, "max_cost_per_1k_requests": 1}, "exactly one"),
    ],
)
def test_budget_settings_are_checked(
    budget: dict[str, object], message: str, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_settings(budgets=[budget])


def test_a_start_that_fails_releases_its_port(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    import socket

    settings = make_settings(
        bundles=[str(default_bundle)], budgets=[{**BUDGET, "router": "cheapest"}]
    )
    server = RouterServer(settings)

    async def start() -> None:
        with pytest.raises(ConfigError, match="not a loaded learned router"):
            await server.start()

    asyncio.run(start())
    assert server.port and server._server is None
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", server.port), timeout=2),
    ):
        pass
