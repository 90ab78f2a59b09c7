"""Traces in a real backend: the official ``openai`` client → the real LiteLLM proxy (its
``otel`` callback and the RouteIQ plug-in) → the real service, both exporting OTLP to a real
Jaeger. One trace, found through Jaeger's query API, holds the edge's span and the service's
spans, parent to child, and no span holds the prompt."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.jaeger import JaegerServer, service_names, spans_of
from tests.support.litellm_proxy import EDGE_CONFIG, LiteLLMProxy, litellm_missing
from tests.support.procs import ServiceProcess

pytestmark = pytest.mark.e2e

_MISSING = litellm_missing()
if _MISSING is not None:
    pytest.fail(_MISSING, pytrace=False)

import openai  # noqa: E402 - after the check above, which explains a missing install

TIER_ROUTER = "llmrouter-tier-tfidf"
MARKER = "zebra-marker-7731"
EDGE_SERVICE, ROUTER_SERVICE = "litellm-edge", "routeiq-router"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # batches every 100 ms, not every 5 s


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, tier_bundle: Path, jaeger_server: JaegerServer
) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("svc")
    config = {
        "bundles": [str(tier_bundle)],
        "default_router": TIER_ROUTER,
        "telemetry": {
            "outcomes_path": str(tmp / "outcomes.jsonl"),
            "tracing": {"enabled": True, "endpoint": jaeger_server.otlp_grpc},
        },
    }
    path = tmp / "service.yaml"
    path.write_text(yaml.safe_dump(config))
    svc = ServiceProcess(["--config", str(path)], env=FAST_EXPORT).wait_ready()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory, service: ServiceProcess, jaeger_server: JaegerServer
) -> Iterator[LiteLLMProxy]:
    """The shipped edge config (mock deployments priced from LiteLLM's cost map) with LiteLLM's
    own OpenTelemetry callback beside the plug-in, message logging off."""
    config = yaml.safe_load(EDGE_CONFIG.read_text())
    settings = config["litellm_settings"]
    settings["callbacks"] = [settings["callbacks"], "otel"]
    settings["turn_off_message_logging"] = True
    path = tmp_path_factory.mktemp("proxy") / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "ROUTEIQ_EDGE_TARGET": service.target,
        "ROUTEIQ_EDGE_ROUTER": TIER_ROUTER,
        "ROUTEIQ_EDGE_DEADLINE_MS": "2000",  # the first call warms the connection
        "OTEL_EXPORTER": "otlp_grpc",
        "OTEL_ENDPOINT": jaeger_server.otlp_grpc,
        "OTEL_SERVICE_NAME": EDGE_SERVICE,
        **FAST_EXPORT,
    }
    with LiteLLMProxy.running(path, env=env) as proc:
        yield proc


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


def test_one_trace_holds_the_edge_and_the_service(
    proxy: LiteLLMProxy, jaeger_server: JaegerServer
) -> None:
    trace_id = secrets.token_hex(16)
    client = openai.OpenAI(
        base_url=f"{proxy.base_url}/v1", api_key=proxy.master_key, max_retries=0, timeout=30
    )
    raw = client.chat.completions.with_raw_response.create(
        model="routeiq-auto",
        messages=[{"role": "user", "content": f"{MARKER}: prove that sqrt(2) is irrational"}],
        extra_headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert raw.headers["x-routeiq-source"] == "MODEL"
    stages = {"routeiq.prediction_cache", "routeiq.inference", "routeiq.policy"}
    found = jaeger_server.wait_for(
        trace_id,
        {
            EDGE_SERVICE: {"routeiq.edge.route"},
            ROUTER_SERVICE: {"/routeiq.router.v1.Router/Route", "routeiq.route", *stages},
        },
    )

    edge = {s["spanID"]: s for s in spans_of(found, EDGE_SERVICE)}
    ours = [s for s in edge.values() if s["operationName"] == "routeiq.edge.route"]
    assert len(ours) == 1, sorted(s["operationName"] for s in edge.values())
    edge_span = ours[0]
    assert _tags(edge_span)["routeiq.model"] == raw.headers["x-routeiq-model"]
    assert _tags(edge_span)["span.kind"] == "client"

    service = {s["operationName"]: s for s in spans_of(found, ROUTER_SERVICE)}
    server_span = service["/routeiq.router.v1.Router/Route"]
    assert _parent(server_span) == edge_span["spanID"]  # the service continues the edge's span
    route = service["routeiq.route"]
    assert _parent(route) == server_span["spanID"]
    assert _tags(route)["routeiq.router"] == TIER_ROUTER
    assert _tags(route)["routeiq.source"] == "MODEL"
    for stage in stages:
        assert _parent(service[stage]) == route["spanID"], stage
    assert service_names(found) >= {EDGE_SERVICE, ROUTER_SERVICE}
    for span in found["spans"]:  # neither the edge's spans nor the service's hold the prompt
        assert MARKER not in str(span), span["operationName"]
