"""Decision events from a real server: every decision (miss, cache hit, fallback, each request
of a batch) and every outcome report is recorded with what the closed loop needs and no prompt
text (unless retain_prompts), to a rotated JSONL file or a real Redis stream; a full buffer or
a failing store drops and counts, never delays or fails an answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from router_service.config import Settings
from router_service.domain import Candidate, Decision, RouteInput, Source
from router_service.proto import pb, pb_grpc
from router_service.server import RouterServer
from router_service.telemetry.events import (
    DecisionEvents,
    JsonlStore,
    RedisStreamStore,
    prompt_hash,
)

MARKER = "okapi-marker-5521"
KNOWN = [
    pb.Candidate(name="llama-3.1-8b-instruct", input_price_per_mtok=0.2, output_price_per_mtok=0.2),
    pb.Candidate(name="llama-3.1-nemotron-51b-instruct"),
]


def _request(prompt: str, request_id: str, *candidates: pb.Candidate) -> pb.RouteRequest:
    return pb.RouteRequest(
        request_id=request_id,
        prompt=prompt,
        candidates=list(candidates or KNOWN),
        labels={"tenant": "acme", "team": "search"},
    )


def _serve_traffic(settings: Settings) -> None:
    """A real server answers :func:`_traffic`, then stops (writing what it recorded)."""

    async def run() -> None:
        server = RouterServer(settings)
        await server.start()
        try:
            await _traffic(server)
        finally:
            await server.stop(0)

    asyncio.run(run())


async def _traffic(server: RouterServer) -> None:
    """A miss, the same prompt again (a cache hit), a fallback, a batch of two, an outcome."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        await stub.Route(_request(f"{MARKER} what is 2+2?", "r-miss"), timeout=10)
        await stub.Route(_request(f"{MARKER} what is 2+2?", "r-hit"), timeout=10)
        unknown = pb.Candidate(name="nobody-knows")
        await stub.Route(_request(f"{MARKER} hello", "r-fallback", unknown), timeout=10)
        batch = [_request(f"{MARKER} batch {i}", f"r-batch-{i}") for i in range(2)]
        await stub.RouteBatch(pb.RouteBatchRequest(requests=batch), timeout=10)
        outcome = pb.ReportOutcomeRequest(
            request_id="r-miss", model="llama-3.1-8b-instruct", quality=0.9, cost_usd=0.001
        )
        await stub.ReportOutcome(outcome, timeout=10)


def test_every_decision_and_outcome_is_recorded_without_the_prompt(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(bundles=[str(default_bundle)])
    _serve_traffic(settings)
    path = Path(settings.telemetry.events.path)
    text = path.read_text()
    assert MARKER not in text
    events = [json.loads(line) for line in text.splitlines()]
    decisions = {e["request_id"]: e for e in events if e["type"] == "decision"}
    outcomes = [e for e in events if e["type"] == "outcome"]
    assert set(decisions) == {"r-miss", "r-hit", "r-fallback", "r-batch-0", "r-batch-1"}
    sources = {rid: e["source"] for rid, e in decisions.items()}
    assert sources["r-miss"] == "MODEL" and sources["r-hit"] == "CACHE"
    assert sources["r-fallback"] == "FALLBACK"
    miss = decisions["r-miss"]
    assert miss["router"] == "llmrouter-knn-tfidf" and miss["version"]
    assert miss["side"] == "champion"
    assert miss["tenant"] == "acme" and miss["labels"]["team"] == "search"
    assert miss["candidates"] == [c.name for c in KNOWN]
    assert (miss["input_price"], miss["output_price"]) == ([0.2, None], [0.2, None])
    assert all(0 <= q <= 1 for q in miss["quality"]) and len(miss["quality"]) == 2
    assert len(miss["score"]) == len(miss["cost"]) == 2
    best = max(range(2), key=lambda i: miss["score"][i])
    assert miss["model"] == miss["candidates"][best]  # the answer is the best score
    assert miss["model"] in {c.name for c in KNOWN} and miss["latency_us"] > 0
    # the service's key; the same prompt up to case and spaces hashes alike
    key = bytes.fromhex(Path(settings.telemetry.events.hash_key_file).read_text())
    assert miss["prompt_hash"] == prompt_hash(key, f"{MARKER}  WHAT is 2+2?\n")
    assert miss["prompt_hash"] != prompt_hash(b"another key", f"{MARKER} what is 2+2?")
    assert decisions["r-hit"]["prompt_hash"] == miss["prompt_hash"]
    assert decisions["r-batch-0"]["prompt_hash"] != decisions["r-batch-1"]["prompt_hash"]
    assert "prompt" not in miss
    assert [(o["request_id"], o["quality"]) for o in outcomes] == [("r-miss", 0.9)]


def test_retain_prompts_writes_the_prompt(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(bundles=[str(default_bundle)])
    settings = settings.model_copy(
        update={"telemetry": settings.telemetry.model_copy(update={"retain_prompts": True})}
    )
    _serve_traffic(settings)
    lines = Path(settings.telemetry.events.path).read_text().splitlines()
    events = [json.loads(line) for line in lines]
    prompts = {e["request_id"]: e.get("prompt") for e in events if e["type"] == "decision"}
    assert prompts["r-miss"] == f"{MARKER} what is 2+2?"


def test_events_go_to_a_redis_stream_when_redis_is_configured(
    default_bundle: Path, make_settings: Callable[..., Settings], redis_server: Any
) -> None:
    settings = make_settings(
        bundles=[str(default_bundle)],
        cache={"redis": {"url": redis_server.url}},
    )
    _serve_traffic(settings)
    assert not Path(settings.telemetry.events.path).exists()
    client = redis.Redis.from_url(redis_server.url)
    entries = client.xrange("routeiq:events")
    client.close()
    events = [json.loads(fields[b"e"]) for _, fields in entries]
    assert sorted(e["request_id"] for e in events if e["type"] == "decision") == [
        "r-batch-0",
        "r-batch-1",
        "r-fallback",
        "r-hit",
        "r-miss",
    ]
    assert [e["request_id"] for e in events if e["type"] == "outcome"] == ["r-miss"]
    assert MARKER.encode() not in b"".join(f[b"e"] for _, f in entries)


@pytest.mark.parametrize("cluster", [False, True])
def test_the_stream_store_writes_in_order_and_trims(
    cluster: bool, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
    client = (redis.RedisCluster if cluster else redis.Redis).from_url(server.url)
    stream = f"events-test-{cluster}"
    client.delete(stream)
    store = RedisStreamStore(client, stream, maxlen=1000)
    lines = [json.dumps({"i": i}).encode() for i in range(3000)]
    store.write(lines[:300])
    assert [f[b"e"] for _, f in client.xrange(stream)] == lines[:300]
    store.write(lines[300:])
    kept = [json.loads(f[b"e"])["i"] for _, f in client.xrange(stream)]
    assert 1000 <= len(kept) < 3000 and kept == list(range(3000 - len(kept), 3000))  # MAXLEN ~
    client.delete(stream)
    store.close()


def _decision(i: int) -> tuple[RouteInput, Decision]:
    req = RouteInput(request_id=f"r{i}", candidates=(Candidate("a"),), prompt=f"prompt {i}")
    decision = Decision(f"r{i}", "a", (), "static", "1", Source.STATIC, "only one", 5)
    return req, decision


def test_a_full_buffer_drops_and_counts_and_the_file_rotates(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "events.jsonl", max_bytes=8192, keep=2)
    dropped: list[int] = []

    async def fill() -> DecisionEvents:
        events = DecisionEvents(store, hash_key=b"k" * 32, buffer=10, on_dropped=dropped.append)
        for i in range(15):  # the writer is not running: the buffer fills up
            events.record(*_decision(i), "champion")
        assert events.dropped == 5 and sum(dropped) == 5
        events.start()
        for _ in range(20):  # twenty more batches of ten (3 KiB each), past 8 KiB
            await events.flush()
            for i in range(10):
                events.record(*_decision(i), "champion")
        await events.close()
        return events

    events = asyncio.run(fill())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    sizes = [(tmp_path / n).stat().st_size for n in names]
    assert all(0 < size <= 8192 for size in sizes), sizes
    assert events.written == 10 + 20 * 10


class _Broken:
    name = "broken"

    def write(self, lines: list[bytes]) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


async def test_a_failing_store_loses_events_not_answers() -> None:
    events = DecisionEvents(_Broken(), hash_key=b"k" * 32)
    events.start()
    for i in range(3):
        events.record(*_decision(i), "champion")
    await asyncio.sleep(0)
    await events.flush()
    await events.close()
    assert (events.written, events.dropped) == (0, 3)


@pytest.mark.parametrize("store", ["jsonl", "redis"])
def test_the_store_setting_is_checked(store: str, make_settings: Callable[..., Settings]) -> None:
    from router_service.errors import ConfigError
    from router_service.metrics import Metrics
    from router_service.server import build_events

    settings = make_settings(telemetry={"events": {"store": store}})
    if store == "redis":
        with pytest.raises(ConfigError, match=r"cache\.redis\.url is not set"):
            build_events(settings, Metrics())
    else:
        assert build_events(settings, Metrics()).store.name == "jsonl"


def test_each_worker_writes_its_own_files(make_settings: Callable[..., Settings]) -> None:
    from router_service.runner import _for_worker

    settings = make_settings(metrics={"port": 9464})
    workers = [Settings.model_validate_json(_for_worker(settings, i)) for i in range(2)]
    paths = [Path(w.telemetry.events.path) for w in workers]
    base = Path(settings.telemetry.events.path)
    assert paths == [base.with_name("events-0.jsonl"), base.with_name("events-1.jsonl")]
    outcomes = [Path(w.telemetry.outcomes_path).name for w in workers]
    shadows = [Path(w.telemetry.shadow_path).name for w in workers]
    assert (outcomes, shadows) == (
        ["outcomes-0.jsonl", "outcomes-1.jsonl"],
        ["shadow-0.jsonl", "shadow-1.jsonl"],
    )
    assert [w.metrics.port for w in workers] == [9464, 9465]
