"""`log_format: json`: the real service writes one JSON object per log line, with the request
id on lines about a request (and, tracing on, the trace id of the call), and never the prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc

from router_service.client import RouterClient, parse_candidates
from router_service.proto import pb, pb_grpc
from tests.support.procs import ServiceProcess

MARKER = "zebra-quartz-marker-prompt-7731"


def test_json_log_lines_carry_the_request_id_and_never_the_prompt(default_bundle: Path) -> None:
    service = ServiceProcess(
        ["--bundle", str(default_bundle)], env={"ROUTEIQ_LOG_FORMAT": "json"}
    ).wait_ready(60)
    try:
        client = RouterClient(service.target)
        # models the bundle does not know, unpriced: the learned router cannot score them and
        # the fallback answers, which the service logs as a warning about this request
        answer = client.route(
            f"{MARKER}: what is 2+2?",
            parse_candidates("unknown-a,unknown-b"),
            request_id="req-json-1",
        )
        client.close()
        assert answer.source == pb.FALLBACK
    finally:
        service.stop()
    lines = [line for line in service.log().splitlines() if line.startswith("{")]
    docs = [json.loads(line) for line in lines]
    assert docs and all({"ts", "level", "logger", "pid", "message"} <= set(d) for d in docs)
    degraded = [d for d in docs if "degraded to fallback" in d["message"]]
    assert degraded and degraded[0]["request_id"] == "req-json-1"
    assert degraded[0]["router"] == "llmrouter-knn-tfidf"
    assert MARKER not in service.log()


def test_json_log_lines_inside_a_traced_call_carry_its_trace_id(
    default_bundle: Path, jaeger_server: Any
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    service = ServiceProcess(
        ["--bundle", str(default_bundle)],
        env={
            "ROUTEIQ_LOG_FORMAT": "json",
            "ROUTEIQ_TELEMETRY__TRACING__ENABLED": "true",
            "ROUTEIQ_TELEMETRY__TRACING__ENDPOINT": jaeger_server.otlp_grpc,
        },
    ).wait_ready(60)
    try:
        with grpc.insecure_channel(service.target) as channel:
            answer = pb_grpc.RouterStub(channel).Route(
                pb.RouteRequest(
                    request_id="req-json-2",
                    prompt=f"{MARKER}: what is 2+2?",
                    candidates=[pb.Candidate(name="unknown-a"), pb.Candidate(name="unknown-b")],
                ),
                metadata=(("traceparent", f"00-{trace_id}-b7ad6b7169203331-01"),),
                timeout=10,
            )
        assert answer.source == pb.FALLBACK
    finally:
        service.stop()
    docs = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    degraded = [d for d in docs if d.get("request_id") == "req-json-2"]
    assert degraded and degraded[0]["trace_id"] == trace_id
    assert len(degraded[0]["span_id"]) == 16
    assert MARKER not in service.log()
