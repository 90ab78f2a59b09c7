"""The closed loop, end to end on a real server, a real Redis stream and the real CLI: a
deliberately weak champion serves LLMRouter prompts while exploring; outcomes are reported from
the data's ground truth for the model that answered (partial feedback, as in production);
``telemetry.retain_prompts`` is off, so the stream holds no prompt text, and the application's
own prompt log is joined back by the keyed prompt hash; ``routeiq-bundle train
--from-telemetry`` learns a challenger from the stream and judges it against the champion on
the latest requests; ``publish --if-better`` publishes it as a canary challenger; ``promote``
makes it the champion the service answers with."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis

from converters.bundle import write_bundle
from converters.datasets import SHIPPED_DATA, load
from converters.evaluation.bundle_eval import bundle_scores
from converters.features.build import build_featurizer, encode_all
from converters.registry_ops import publish
from converters.routers import TrainedRouter, to_onnx
from router_service.bundles.store import DirStore
from router_service.config import Settings
from router_service.proto import pb, pb_grpc
from tests.support.traffic import router_info, wait_until

ROUTER = "loop"
CANDIDATES = [
    "codegemma-7b",
    "gemma-2-9b-it",
    "qwen2.5-7b-instruct",
    "llama-3.1-8b-instruct",
    "llama-3.1-nemotron-51b-instruct",
]
REQUESTS = 3000
EXPLORATION = 0.5


def weak_champion(out: Path, prompts: list[str], prices: dict[str, float]) -> Path:
    """A router that believes codegemma-7b is the best of the candidates for every prompt
    (on this data it is the worst at its price): fixed predictions over a TF-IDF featurizer."""
    built = build_featurizer("tfidf", prompts, prompts[:32], svd_dims=32)
    dims = encode_all(built, prompts[:1]).shape[1]
    weak = TrainedRouter(
        kind="fixed",
        n_features=dims,
        n_models=len(CANDIDATES),
        params={},
        bias=np.array([0.9, 0.5, 0.5, 0.5, 0.6]),
    )
    write_bundle(
        out,
        name=ROUTER,
        router_kind="fixed",
        models=CANDIDATES,
        model_costs={m: prices[m] for m in CANDIDATES},
        featurizer=built.spec,
        files={**built.files, "router.onnx": to_onnx(weak, dims).SerializeToString()},
        default_cost_weight=0.1,
    )
    return out


def true_quality_gain(bundle: Path, ds: Any, held: np.ndarray) -> float:
    """The challenger's true mean quality at its λ minus the champion's (codegemma-7b) on the
    latest requests, from the data's quality of every model."""
    mask = np.zeros(ds.n_queries, dtype=bool)
    mask[held] = True
    rows = ds.subset(mask)
    S, manifest = bundle_scores(bundle, rows, lambda _what, _n: lambda _k: None)
    cost = np.array([manifest.model_costs[m] for m in manifest.models])
    chosen = (S - manifest.default_cost_weight * cost).argmax(axis=1)
    cols = [ds.models.index(manifest.models[j]) for j in chosen]
    challenger = rows.quality[np.arange(rows.n_queries), cols].mean()
    return float(challenger - rows.quality[:, ds.models.index("codegemma-7b")].mean())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "converters.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def replay(
    stub: pb_grpc.RouterStub, ds: Any, rows: np.ndarray, prices: dict[str, float]
) -> None:
    """Route every row's prompt, then report the answering model's true quality."""
    cols = {m: ds.models.index(m) for m in CANDIDATES}
    candidates = [
        pb.Candidate(name=m, input_price_per_mtok=prices[m], output_price_per_mtok=prices[m])
        for m in CANDIDATES
    ]
    for start in range(0, len(rows), 25):
        chunk = rows[start : start + 25]
        batch = pb.RouteBatchRequest(
            requests=[
                pb.RouteRequest(
                    request_id=f"q{i}", router=ROUTER, prompt=ds.queries[i], candidates=candidates
                )
                for i in chunk
            ]
        )
        answers = await stub.RouteBatch(batch, timeout=30)
        await asyncio.gather(
            *(
                stub.ReportOutcome(
                    pb.ReportOutcomeRequest(
                        request_id=a.request_id,
                        model=a.model,
                        quality=float(ds.quality[i, cols[a.model]]),
                        latency_ms=500.0,
                        cost_usd=1e-4,
                    ),
                    timeout=10,
                )
                for i, a in zip(chunk, answers.responses, strict=True)
            )
        )


async def test_retrain_from_telemetry_beats_a_weak_champion_and_is_promoted(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    start_server: Any,
    redis_server: Any,
) -> None:
    ds = load(SHIPPED_DATA / "llmrouter", "llmrouter").train()
    assert ds.prices is not None
    prices = {m: sum(ds.prices[m]) / 2 for m in CANDIDATES}
    rows = np.random.default_rng(7).permutation(ds.n_queries)[:REQUESTS]
    store = DirStore(tmp_path / "registry")
    publish(store, weak_champion(tmp_path / "weak", list(ds.queries[:2000]), prices))
    server = await start_server(
        make_settings(
            registry={"source": str(store.root), "poll_s": 0.1},
            cache={"redis": {"url": redis_server.url}},
            exploration={ROUTER: EXPLORATION},
            engine={"router_timeouts_ms": {ROUTER: 500}},  # a loaded shared machine
        )
    )
    assert not server.settings.telemetry.retain_prompts  # the default
    client = redis.Redis.from_url(redis_server.url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        assert (await router_info(stub, ROUTER)).version == "1"
        await replay(stub, ds, rows, prices)

        assert server.events is not None
        await server.events.flush()
        assert int(client.xlen("routeiq:events")) == server.events.written >= 1.9 * REQUESTS
        stream = b"\n".join(f[b"e"] for _, f in client.xrange("routeiq:events"))
        assert not any(ds.queries[i].encode() in stream for i in rows[:300])
        # the application's own log of what it sent (its prompts, keyed by nothing)
        log = tmp_path / "app-prompts.jsonl"
        log.write_text("".join(json.dumps({"prompt": ds.queries[i]}) + "\n" for i in rows))
        source = f"{redis_server.url}?stream=routeiq:events"
        trained = cli(
            "train",
            "--from-telemetry",
            source,
            "--prompts",
            str(log),
            "--hash-key",
            str(server.settings.telemetry.events.hash_key_file),
            "--out",
            str(tmp_path / "challenger"),
            "--json",
        )
        assert trained.returncode == 0, trained.stderr
        report = json.loads(trained.stdout)["report"]
        # a decision the fallback answered (a slow featurizer under load) is not the router's
        joined = report["join"]["joined"]
        assert joined >= 0.9 * REQUESTS, report["join"]
        assert report["join"]["prompts_from_store"] >= joined
        assert set(report["join"]["dropped"]) <= {"not_a_router_decision", "no_outcome"}, report[
            "join"
        ]
        evaluation = report["evaluation"]
        assert evaluation["champion_version"] == "1"
        assert abs(evaluation["rows"] - joined * 0.2) <= 1
        # the champion as logged: codegemma-7b whenever it did not explore
        assert evaluation["champion"]["matched_rows"] > evaluation["rows"] * (1 - EXPLORATION)
        gain = evaluation["comparison"]
        assert gain["quality_gain"] >= 0.1 and gain["quality_gain_lower95"] > 0, gain
        assert gain["cost_ratio"] <= 1.05, gain  # publish's default cost tolerance
        # the estimate is honest: every model's true quality is known here, the gain it
        # estimated from one model's outcome per request is within 3 standard errors of it
        true_gain = true_quality_gain(tmp_path / "challenger", ds, rows[-evaluation["rows"] :])
        assert abs(gain["quality_gain"] - true_gain) <= 3 * gain["quality_gain_se"], true_gain

        published = cli(
            "publish",
            str(tmp_path / "challenger"),
            "--registry",
            str(store.root),
            "--if-better",
            "--canary",
            "0.2",
        )
        assert published.returncode == 0, published.stderr
        assert "publishing: better" in published.stdout

        async def canary() -> bool:
            info = await router_info(stub, ROUTER)
            return info.rollout.mode == pb.Rollout.CANARY and info.rollout.challenger.version == "2"

        await wait_until(canary)
        promoted = cli("promote", ROUTER, "--registry", str(store.root))
        assert promoted.returncode == 0, promoted.stderr

        async def champion_is_challenger() -> bool:
            info = await router_info(stub, ROUTER)
            return info.version == "2" and info.rollout.mode == pb.Rollout.MODE_UNSPECIFIED

        await wait_until(champion_is_challenger)
        answer = await stub.Route(
            pb.RouteRequest(
                request_id="after",
                router=ROUTER,
                prompt=ds.queries[int(rows[0])],
                candidates=[pb.Candidate(name=m) for m in CANDIDATES],
            ),
            timeout=10,
        )
        assert answer.router_version == "2"
        # judged against version 1, which no longer serves: not published again
        again = cli(
            "publish", str(tmp_path / "challenger"), "--registry", str(store.root), "--if-better"
        )
        assert again.returncode == 3, again.stderr
        assert "registry's champion is version 2" in again.stdout
    client.close()
