"""The metrics an operator alerts on, scraped over HTTP from a real server and parsed with
``prometheus_client``'s text parser: calls by method and status code, calls in flight,
decisions by router, version and source, per-stage latency histograms that resolve 50 µs to
100 ms, the micro-batch queue wait, and fallbacks by reason."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from router_service.config import Settings
from router_service.proto import pb_grpc
from tests.support.procs import free_port
from tests.support.traffic import metrics_text, route_four_ways

ROUTE = "routeiq.router.v1.Router/Route"


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics_text(port)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _get(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_calls_decisions_stages_and_fallbacks_are_counted(
    default_bundle: Path,
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], Any],
) -> None:
    port = free_port()
    server = await start_server(
        make_settings(bundles=[str(default_bundle)], metrics={"port": port})
    )

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        answers = await route_four_ways(pb_grpc.RouterStub(channel))
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    miss = answers.miss
    assert answers.refused.code() is grpc.StatusCode.INVALID_ARGUMENT

    samples = await asyncio.to_thread(_scrape, port)
    router, version = miss.router, miss.router_version
    assert _get(samples, "routeiq_rpc_requests_total", method=ROUTE, code="OK") == 3
    assert _get(samples, "routeiq_rpc_requests_total", method=ROUTE, code="INVALID_ARGUMENT") == 1
    health = "grpc.health.v1.Health/Check"
    assert _get(samples, "routeiq_rpc_requests_total", method=health, code="OK") == 1
    assert _get(samples, "routeiq_rpc_in_flight", method=ROUTE) == 0
    assert _get(samples, "routeiq_rpc_seconds_count", method=ROUTE) == 4
    for source in ("MODEL", "CACHE", "FALLBACK"):
        n = _get(samples, "routeiq_decisions_total", router=router, version=version, source=source)
        assert n == 1, source
    stages = {
        stage: _get(samples, "routeiq_stage_seconds_count", router=router, stage=stage)
        for stage in ("prediction_cache", "feature_cache", "inference", "policy")
    }
    # the miss passes every stage, the hit the prediction cache and the policy; the fallback
    # is answered before any (none of its candidates is a model the router knows)
    assert stages == {"prediction_cache": 2, "feature_cache": 1, "inference": 1, "policy": 2}
    bounds = {
        dict(labels)["le"]
        for name, labels in samples
        if name == "routeiq_stage_seconds_bucket" and dict(labels)["stage"] == "policy"
    }
    assert {"5e-05", "0.0001", "0.001", "0.01", "0.1"} <= bounds
    assert _get(samples, "routeiq_inference_queue_seconds_count", router=router) == 1
    assert _get(samples, "routeiq_fallbacks_total", router=router, reason="unknown_models") == 1
