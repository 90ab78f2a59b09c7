"""Rollouts from the registry's rollout file, on a real server: a canary challenger answers its
share of request ids (the same id always on the same side), a shadow challenger decides for
every request and is recorded but never answers; ListRouters shows the rollout."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from converters.registry_ops import promote, publish, rollback, set_rollout
from router_service.bundles.store import DirStore
from router_service.config import Settings
from router_service.proto import pb, pb_grpc
from tests.support.bundles import MODELS, embedding_bundle
from tests.support.traffic import router_info, wait_until

ROUTER = "emb-linear"


def batch(ids: list[str]) -> pb.RouteBatchRequest:
    return pb.RouteBatchRequest(
        requests=[
            pb.RouteRequest(
                request_id=i,
                router=ROUTER,
                embedding=pb.Embedding(values=[0.0, 1.0, 0.0, 0.0]),
                candidates=[pb.Candidate(name=m) for m in MODELS],
                labels={"tenant": f"t{n % 7}"},
            )
            for n, i in enumerate(ids)
        ]
    )


async def versions_of(stub: pb_grpc.RouterStub, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(ids), 250):
        chunk = ids[start : start + 250]
        answers = await stub.RouteBatch(batch(chunk), timeout=10)
        out.update({a.request_id: a.router_version for a in answers.responses})
    return out


async def rollout_of(stub: pb_grpc.RouterStub) -> pb.RouterInfo:
    return await router_info(stub, ROUTER)


async def test_canary_share_sticky_ids_and_shadow(
    tmp_path: Path, make_settings: Callable[..., Settings], start_server: Any
) -> None:
    store = DirStore(tmp_path / "registry")
    for version in ("a", "b"):
        publish(store, embedding_bundle(tmp_path / version, name=ROUTER, version=version))
    set_rollout(store, ROUTER, challenger=2, share=0.1)
    shadow_path = tmp_path / "shadow.jsonl"
    server = await start_server(
        make_settings(
            registry={"source": str(store.root), "poll_s": 0.1, "shadow_max_in_flight": 1000},
            telemetry={"shadow_path": str(shadow_path)},
        )
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        info = await rollout_of(stub)
        assert info.version == "1"
        assert info.rollout.mode == pb.Rollout.CANARY and info.rollout.share == 0.1
        assert info.rollout.challenger.version == "2"

        ids = [f"req-{n}" for n in range(5000)]
        first = await versions_of(stub, ids)
        share = Counter(first.values())["2"] / len(ids)
        assert 0.08 <= share <= 0.12, share
        assert set(first.values()) == {"1", "2"}
        again = await versions_of(stub, ids[::7])
        assert all(first[i] == v for i, v in again.items())

        # by tenant: every request of a tenant lands on the same side
        set_rollout(store, ROUTER, challenger=2, share=0.5, assign_by="tenant")

        async def by_tenant() -> bool:
            return (await rollout_of(stub)).rollout.assign_by == "tenant"

        await wait_until(by_tenant)
        answers = await stub.RouteBatch(batch(ids[:210]), timeout=10)
        sides: dict[str, set[str]] = {}
        for n, a in enumerate(answers.responses):
            sides.setdefault(f"t{n % 7}", set()).add(a.router_version)
        assert all(len(s) == 1 for s in sides.values()), sides

        set_rollout(store, ROUTER, challenger=2, shadow=True)

        async def shadowing() -> bool:
            return (await rollout_of(stub)).rollout.mode == pb.Rollout.SHADOW

        await wait_until(shadowing)
        shadow_ids = [f"shadow-{n}" for n in range(300)]
        answered = await versions_of(stub, shadow_ids)
        assert set(answered.values()) == {"1"}  # the shadow never answers

        def recorded() -> list[dict[str, Any]]:
            if not shadow_path.exists():
                return []
            whole = shadow_path.read_text().split("\n")[:-1]  # the last is still being written
            return [json.loads(line) for line in whole]

        async def all_recorded() -> bool:
            return len(recorded()) >= len(shadow_ids)

        await wait_until(all_recorded)
        rows = recorded()
        assert {r["request_id"] for r in rows} == set(shadow_ids)
        assert all(r["answer"]["version"] == "1" and r["shadow"]["version"] == "2" for r in rows)
        assert all("prompt" not in r and "embedding" not in r for r in rows)

        # promote: the challenger (already loaded and warm) becomes champion; rollback: back
        # to 1, pinned
        loaded_challenger = server.engine.table.rollouts[ROUTER].challenger
        promote(store, ROUTER)

        async def promoted() -> bool:
            info = await rollout_of(stub)
            return info.version == "2" and not info.rollout.HasField("challenger")

        await wait_until(promoted)
        assert server.engine.table.routers[ROUTER] is loaded_challenger
        rollback(store, ROUTER)

        async def rolled_back() -> bool:
            return (await rollout_of(stub)).version == "1"

        await wait_until(rolled_back)
        publish(store, embedding_bundle(tmp_path / "c", name=ROUTER, version="c"))
        await asyncio.sleep(0.5)
        assert (await rollout_of(stub)).version == "1"  # pinned: a publication does not serve


async def test_a_replica_starting_with_a_refused_newest_version_serves_the_one_before(
    tmp_path: Path, make_settings: Callable[..., Settings], start_server: Any
) -> None:
    store = DirStore(tmp_path / "registry")
    publish(store, embedding_bundle(tmp_path / "a", name=ROUTER, version="a"))
    broken = embedding_bundle(tmp_path / "b", name=ROUTER, version="b")
    (broken / "router.onnx").write_bytes(b"\0" * 10)
    assert store.publish(ROUTER, broken) == 2  # unverified: a broken publisher
    server = await start_server(make_settings(registry={"source": str(store.root)}))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        info = await rollout_of(pb_grpc.RouterStub(channel))
    assert info.version == "1"
    assert server.metrics.sample("routeiq_registry_refused_total", {"router": ROUTER}) == 1


async def test_filesystem_events_swap_and_cached_predictions_never_cross_versions(
    tmp_path: Path, make_settings: Callable[..., Settings], start_server: Any
) -> None:
    """Polling once a minute, a publication still serves within seconds (inotify); the
    prediction cache (LRU on) answers the old version's request from the cache, and the new
    version's first answer for the same input from its own model."""
    store = DirStore(tmp_path / "registry")
    publish(store, embedding_bundle(tmp_path / "a", name=ROUTER, version="a"))
    server = await start_server(
        make_settings(registry={"source": str(store.root), "poll_s": 60, "debounce_ms": 50})
    )
    request = batch(["same-input"]).requests[0]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        first = await stub.Route(request, timeout=5)
        again = await stub.Route(request, timeout=5)
        assert (first.model, first.router_version) == ("medium", "1")
        assert (again.model, pb.Source.Name(again.source)) == ("medium", "CACHE")
        await asyncio.sleep(0.3)  # the watcher is running before the publication
        started = time.monotonic()
        publish(store, embedding_bundle(tmp_path / "b", name=ROUTER, version="b", best=(2, 0, 1)))

        async def swapped() -> bool:
            return (await rollout_of(stub)).version == "2"

        await wait_until(swapped, timeout_s=10)
        assert time.monotonic() - started < 10  # long before the next poll
        after = await stub.Route(request, timeout=5)
        assert (after.model, after.router_version) == ("small", "2")
        assert pb.Source.Name(after.source) == "MODEL"
