"""OpenTelemetry spans from a real server, checked with the SDK's in-memory exporter: the
gRPC server span continues the caller's W3C trace context, the decision and its stages are
its children with their attributes, health calls are not traced, and no span holds the prompt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router_service.config import Settings
from router_service.proto import pb, pb_grpc
from router_service.server import RouterServer
from tests.support.traffic import KNOWN, route_request

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PROMPT = "secret-marker-prompt: prove that sqrt(2) is irrational"


async def test_spans_continue_the_callers_trace_with_stage_children(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    exporter = InMemorySpanExporter()
    server = RouterServer(make_settings(bundles=[str(default_bundle)]), span_exporter=exporter)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.RouterStub(channel)
            request = route_request(*KNOWN)
            request.request_id, request.prompt = "req-trace-1", PROMPT
            metadata = (("traceparent", TRACEPARENT),)
            first = await stub.Route(request, metadata=metadata, timeout=10)
            await stub.Route(request, metadata=metadata, timeout=10)  # a cache hit
            health = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        await server.stop(0)
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert not [s for s in spans if "Health" in s.name]
    servers = by_name["/routeiq.router.v1.Router/Route"]
    assert len(servers) == 2
    assert all(f"{s.context.trace_id:032x}" == TRACE_ID for s in spans)
    routes = by_name["routeiq.route"]
    assert {r.parent.span_id for r in routes} == {s.context.span_id for s in servers}
    miss, hit = sorted(routes, key=lambda r: r.start_time)
    assert miss.attributes["routeiq.router"] == "llmrouter-knn-tfidf"
    assert miss.attributes["routeiq.request_id"] == "req-trace-1"
    assert miss.attributes["routeiq.source"] == "MODEL"
    assert miss.attributes["routeiq.model"] == first.model
    assert hit.attributes["routeiq.source"] == "CACHE"
    stages = {
        (s.name, s.parent.span_id) for s in spans if s.name.startswith("routeiq.") and s.parent
    }
    for route in (miss, hit):
        assert ("routeiq.prediction_cache", route.context.span_id) in stages
        assert ("routeiq.policy", route.context.span_id) in stages
    assert ("routeiq.inference", miss.context.span_id) in stages
    assert ("routeiq.feature_cache", miss.context.span_id) in stages
    assert ("routeiq.inference", hit.context.span_id) not in stages
    # the micro-batch job: a child of the request's inference span, linked from it, with the
    # featurizer and the model under it
    (inference,) = by_name["routeiq.inference"]
    (job,) = by_name["routeiq.inference_job"]
    assert job.parent.span_id == inference.context.span_id
    assert [link.context.span_id for link in job.links] == [inference.context.span_id]
    assert job.attributes["routeiq.batch_size"] == 1
    assert ("routeiq.featurize", job.context.span_id) in stages
    assert ("routeiq.model", job.context.span_id) in stages
    cache_hits = [s.attributes["routeiq.cache_hit"] for s in by_name["routeiq.prediction_cache"]]
    assert sorted(cache_hits) == [False, True]
    for span in spans:
        for value in (span.attributes or {}).values():
            assert "secret-marker-prompt" not in str(value)


async def test_tracing_off_sets_nothing_up_and_on_builds_its_exporter(
    make_settings: Callable[..., Settings],
) -> None:
    server = RouterServer(make_settings())
    assert server.tracing is None
    assert server.engine._tracer is None
    on = RouterServer(make_settings(telemetry={"tracing": {"enabled": True, "sample_ratio": 0.01}}))
    assert on.tracing is not None and on.engine._tracer is on.tracing.tracer
    assert on.tracing.sample_ratio == 0.01
    on.tracing.shutdown()


def test_each_exporter_setting_builds_its_exporter() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from router_service.config import TracingSettings
    from router_service.telemetry.tracing import _exporter

    grpc_exporter = _exporter(TracingSettings(endpoint="http://127.0.0.1:4317"))
    assert isinstance(grpc_exporter, Grpc)
    http_exporter = _exporter(
        TracingSettings(exporter="otlp_http", endpoint="http://127.0.0.1:4318/v1/traces")
    )
    assert isinstance(http_exporter, Http)
    assert http_exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    assert isinstance(_exporter(TracingSettings(exporter="console")), ConsoleSpanExporter)
    for exporter in (grpc_exporter, http_exporter):
        exporter.shutdown()


async def test_one_job_span_is_linked_from_every_request_of_its_batch(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    """A RouteBatch of three new prompts is inferred in one micro-batch job: one job span,
    linked from the three requests' inference spans."""
    exporter = InMemorySpanExporter()
    server = RouterServer(make_settings(bundles=[str(default_bundle)]), span_exporter=exporter)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.RouterStub(channel)
            requests = [route_request(*KNOWN) for _ in range(3)]
            for i, request in enumerate(requests):
                request.prompt = f"question number {i}: what is {i} + {i}?"
            batch = pb.RouteBatchRequest(requests=requests)
            answers = await stub.RouteBatch(batch, timeout=10)
    finally:
        await server.stop(0)
    assert [a.source for a in answers.responses] == [pb.MODEL] * 3
    spans = exporter.get_finished_spans()
    inference = {s.context.span_id for s in spans if s.name == "routeiq.inference"}
    jobs = [s for s in spans if s.name == "routeiq.inference_job"]
    assert len(inference) == 3
    assert len(jobs) == 1, [j.attributes for j in jobs]
    assert jobs[0].attributes["routeiq.batch_size"] == 3
    assert {link.context.span_id for link in jobs[0].links} == inference


async def test_unsampled_calls_make_no_spans_at_all(
    default_bundle: Path, make_settings: Callable[..., Settings]
) -> None:
    """sample_ratio 0: a caller's sampled trace is continued (all its spans), a caller's
    unsampled trace and a call without one make no span — not the server's, not the
    engine's, not a micro-batch job's of its own."""
    exporter = InMemorySpanExporter()
    settings = make_settings(
        bundles=[str(default_bundle)], telemetry={"tracing": {"sample_ratio": 0.0}}
    )
    server = RouterServer(settings, span_exporter=exporter)
    await server.start()
    sampled = "0af7651916cd43dd8448eb211c80319c"
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.RouterStub(channel)

            async def route(prompt: str, *metadata: tuple[str, str]) -> None:
                request = route_request(*KNOWN)
                request.prompt = prompt
                await stub.Route(request, metadata=metadata, timeout=10)

            await route("no trace context at all")
            await route("an unsampled caller", ("traceparent", f"00-{'1' * 32}-{'2' * 16}-00"))
            await route("a malformed traceparent", ("traceparent", "00-nonsense"))
            await route("a sampled caller", ("traceparent", f"00-{sampled}-{'3' * 16}-01"))
    finally:
        await server.stop(0)
    spans = exporter.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in spans} == {sampled}
    names = {s.name for s in spans}
    assert {"/routeiq.router.v1.Router/Route", "routeiq.route", "routeiq.inference_job"} <= names
