"""OpenTelemetry traces (``telemetry.tracing``), off by default.

When on: the gRPC server is instrumented with ``opentelemetry-instrumentation-grpc`` (health
and reflection left out), which continues the W3C trace context a client sends (the LiteLLM
plug-in forwards the request's ``traceparent``); the engine adds a ``routeiq.route`` span per
decision with stage spans under it (prediction cache, inference, policy) and attributes such as
router, version, source, cache hit, fallback reason — never prompt text. Spans are sampled by
``sample_ratio`` (parent-based: a sampled caller's trace is always continued) and exported in
batches over OTLP (gRPC or HTTP) or to the console. When off, nothing is set up and the
engine takes no span code path at all.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer

from router_service.config import TracingSettings

__all__ = ["Tracing"]

EXCLUDED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")


def _exporter(cfg: TracingSettings) -> SpanExporter:
    """The configured exporter. An OTLP endpoint given as ``http://`` is plaintext, ``https://``
    TLS; unset, the exporters read the standard ``OTEL_EXPORTER_OTLP_*`` variables."""
    if cfg.exporter == "console":
        return ConsoleSpanExporter()
    headers = cfg.headers or None
    if cfg.exporter == "otlp_http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=cfg.endpoint, headers=headers, timeout=cfg.timeout_s)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=cfg.endpoint, headers=headers, timeout=cfg.timeout_s)


class Tracing:
    """A tracer provider of the service's own (the global one is left alone)."""

    def __init__(self, cfg: TracingSettings, exporter: SpanExporter | None = None) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": cfg.service_name}),
            sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
        )
        if exporter is None:
            self.provider.add_span_processor(BatchSpanProcessor(_exporter(cfg)))
        else:  # tests: every span handed over as it ends
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("routeiq.router")

    @classmethod
    def from_settings(
        cls, cfg: TracingSettings, exporter: SpanExporter | None = None
    ) -> Tracing | None:
        return cls(cfg, exporter) if cfg.enabled or exporter is not None else None

    def server_interceptor(self) -> Any:
        from opentelemetry.instrumentation.grpc import (  # noqa: PLC0415
            aio_server_interceptor,
            filters,
        )

        keep = filters.negate(
            filters.any_of(*(filters.service_prefix(s) for s in EXCLUDED_SERVICES))
        )
        return aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=keep
        )

    def shutdown(self) -> None:
        self.provider.shutdown()
