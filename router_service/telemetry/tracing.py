"""OpenTelemetry traces (``telemetry.tracing``), off by default.

When on: the gRPC server is instrumented with ``opentelemetry-instrumentation-grpc`` (health
and reflection left out), which continues the W3C trace context a client sends (the LiteLLM
plug-in forwards the request's ``traceparent``); the engine adds a ``routeiq.route`` span per
decision with stage spans under it (prediction cache, inference, policy) and attributes such as
router, version, source, cache hit, fallback reason — never prompt text. Spans are exported in
batches over OTLP (gRPC or HTTP) or to the console. When off, nothing is set up and the engine
takes no span code path at all.

Sampling is decided before any span work, in :class:`_SampledCalls`: a call whose caller sent a
``traceparent`` follows its sampled flag; a call without one is sampled with probability
``sample_ratio``. Only sampled calls go through OpenTelemetry's interceptor (the provider then
records all it is handed); an unsampled call costs a look at its metadata, and the engine, the
micro-batcher and the logs see no recording span and take their untraced paths.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Tracer

from router_service.config import TracingSettings
from router_service.telemetry import TRACEPARENT

__all__ = ["Tracing"]

EXCLUDED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")
_EXCLUDED_PREFIXES = tuple(f"/{name}/" for name in EXCLUDED_SERVICES)
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]  # generic in the stubs only
else:
    Handler = grpc.RpcMethodHandler


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
        self.sample_ratio = cfg.sample_ratio
        self.provider = TracerProvider(  # sampling happened already: see _SampledCalls
            resource=Resource.create({"service.name": cfg.service_name}),
            sampler=ParentBased(ALWAYS_ON),
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

    def server_interceptor(self) -> grpc.aio.ServerInterceptor:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor  # noqa: PLC0415

        otel = aio_server_interceptor(tracer_provider=self.provider)  # type: ignore[no-untyped-call]
        return _SampledCalls(otel, self.sample_ratio)

    def shutdown(self) -> None:
        self.provider.shutdown()


class _SampledCalls(grpc.aio.ServerInterceptor):
    """Sends sampled calls through OpenTelemetry's interceptor and the rest straight on
    (health and reflection never traced)."""

    def __init__(self, otel: Any, ratio: float) -> None:
        self._otel = otel
        self._ratio = ratio

    def _sampled(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        for key, value in metadata or ():
            if key == "traceparent":
                found = TRACEPARENT.fullmatch(value) if isinstance(value, str) else None
                if found is not None:
                    return bool(int(found.group(1), 16) & 1)
                break  # malformed: a new trace, as OpenTelemetry would start
        return random.random() < self._ratio  # noqa: S311 - sampling, not security

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = details.method
        if method.startswith(_EXCLUDED_PREFIXES) or not self._sampled(details.invocation_metadata):
            return await continuation(details)
        handler: Handler | None = await self._otel.intercept_service(continuation, details)
        return handler
