"""`log_format: json`: the real service writes one JSON object per log line, with the request
id on lines about a request, and never the prompt."""

from __future__ import annotations

import json
from pathlib import Path

from router_service.client import RouterClient, parse_candidates
from router_service.proto import pb
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
