"""The Envoy edge, end to end: the official ``openai`` client → a real Envoy 1.40 → the real
``routeiq-router serve`` process (ext_proc) → fake OpenAI-compatible upstreams that say who they
are. The strategy routes on a keyword in the prompt (``tests/support/envoy_strategies.py``), so
every test knows which upstream must answer.

A missing Envoy binary fails these tests with what to install; nothing is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import yaml

from edge.devtools.fake_upstream import FakeUpstream
from tests.support.envoy import DEPLOY_CONFIG, EnvoyProcess, envoy_binary, render_edge, validate
from tests.support.procs import ServiceProcess, free_port

pytestmark = pytest.mark.e2e

BIG, SMALL = "gpt-big", "small-fast"  # served by upstream a and b; c is Envoy's default route
SECRET = "zebra-papaya-417"  # in prompts; must never show up in a log
_PROCESS_SPAN = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"


def _require_tools() -> None:
    if importlib.util.find_spec("openai") is None:
        pytest.fail("the openai package is not installed: install the test requirements")
    try:
        envoy_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc))


def _router_config(path: Path, on_malformed: str) -> Path:
    priced = [
        {"name": BIG, "input_price_per_mtok": 10, "output_price_per_mtok": 30},
        {"name": SMALL, "input_price_per_mtok": 0.1, "output_price_per_mtok": 0.4},
    ]
    config = {
        "strategies": {"keyword": "tests.support.envoy_strategies:Keyword"},
        "routers": [
            {
                "name": "by-keyword",
                "strategy": "keyword",
                "params": {"keywords": {"hard": BIG, "quick": SMALL}},
            },
            {"name": "cheapest", "strategy": "cheapest"},
        ],
        "default_router": "cheapest",
        "server": {"grace_period_s": 1},
        "telemetry": {"outcomes_path": str(path.parent / "outcomes.jsonl")},
        "ext_proc": {
            "on_malformed": on_malformed,
            "router": "by-keyword",
            "routes": [
                {
                    "name": "cheap",
                    "match": {"route": "openai", "model": "cheap"},
                    "router": "cheapest",
                    "candidates": priced,
                },
                {
                    "name": "auto",
                    "match": {"route": "openai", "model": "auto"},
                    "candidates": [BIG, SMALL],
                },
            ],
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Edge:
    service: ServiceProcess
    envoy: EnvoyProcess
    upstreams: dict[str, FakeUpstream]

    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(
            base_url=f"{self.envoy.base_url}/v1", api_key="sk-test", max_retries=0, timeout=10
        )

    def counts(self) -> dict[str, int]:
        return {name: len(u.requests) for name, u in self.upstreams.items()}

    def only_new(self, before: dict[str, int]) -> tuple[str, dict[str, Any]]:
        """The one upstream that got a request since ``before``, and that request."""
        grown = [n for n, c in self.counts().items() if c != before[n]]
        assert len(grown) == 1, f"expected exactly one upstream to be called, got {grown}"
        name = grown[0]
        assert len(self.upstreams[name].requests) == before[name] + 1
        return name, self.upstreams[name].requests[-1]

    def post_raw(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            f"{self.envoy.base_url}{path}", data=body, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


def _start_edge(tmp: Path, upstreams: dict[str, FakeUpstream], on_malformed: str) -> Edge:
    config = _router_config(tmp / "router.yaml", on_malformed)
    service = ServiceProcess(["--config", str(config)]).wait_ready()
    ports = (upstreams["a"].port, upstreams["b"].port, upstreams["c"].port)
    envoy = EnvoyProcess.edge(router_port=service.port, upstreams=ports, models=(BIG, SMALL))
    return Edge(service, envoy.wait_ready(), upstreams)


def _stop_edge(edge: Edge) -> None:
    edge.envoy.stop()
    code = edge.service.stop()
    log = edge.service.log()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert SECRET not in log, "prompt text in the service log"
    assert SECRET not in edge.envoy.access_log(), "prompt text in Envoy's access log"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeUpstream]]:
    _require_tools()
    ups = {name: FakeUpstream(name) for name in "abc"}
    yield ups
    for upstream in ups.values():
        upstream.stop()


@pytest.fixture(scope="module")
def edge(
    upstreams: dict[str, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    edge = _start_edge(tmp_path_factory.mktemp("edge-pass"), upstreams, "pass")
    yield edge
    _stop_edge(edge)


@pytest.fixture(scope="module")
def strict_edge(
    upstreams: dict[str, FakeUpstream], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    edge = _start_edge(tmp_path_factory.mktemp("edge-reject"), upstreams, "reject")
    yield edge
    _stop_edge(edge)


def _chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}


# -- configs --------------------------------------------------------------------------------
def test_local_and_deploy_configs_validate(tmp_path: Path) -> None:
    _require_tools()
    local = tmp_path / "local.yaml"
    local.write_text(
        render_edge(
            listen_port=free_port(),
            admin_port=free_port(),
            router_port=50051,
            upstreams=(8001, 8002, 8003),
            models=(BIG, SMALL),
        )
    )
    for config in (local, DEPLOY_CONFIG):
        out = validate(config)
        assert out.returncode == 0 and "OK" in out.stdout, f"{config}:\n{out.stdout}\n{out.stderr}"


# -- routing --------------------------------------------------------------------------------
@pytest.mark.parametrize(("word", "upstream", "model"), [("hard", "a", BIG), ("quick", "b", SMALL)])
def test_chat_goes_to_the_upstream_the_service_chose(
    edge: Edge, word: str, upstream: str, model: str
) -> None:
    before = edge.counts()
    raw = edge.client().chat.completions.with_raw_response.create(
        **_chat(f"a {word} question about {SECRET}", temperature=0.25)
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == f"upstream={upstream}"
    assert raw.headers["x-upstream"] == upstream
    assert raw.headers["x-routeiq-model"] == model  # Envoy tells the client which model answered
    assert raw.headers["x-routeiq-source"] == "STATIC"  # ... and where the decision came from
    name, seen = edge.only_new(before)
    assert name == upstream
    # The upstream got the rewritten model, everything else as sent, and a correct length
    # (the fake reads content-length bytes and parses them as JSON).
    assert seen["body"] == {
        "model": model,
        "messages": [{"role": "user", "content": f"a {word} question about {SECRET}"}],
        "temperature": 0.25,
    }
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-routeiq-model"] == model
    assert int(headers["content-length"]) == len(json.dumps(seen["body"], separators=(",", ":")))


def test_concurrent_requests_are_each_routed_on_their_own_prompt(edge: Edge) -> None:
    client = edge.client()
    words = ["hard", "quick"] * 20

    def ask(word: str) -> str:
        answer = client.chat.completions.create(**_chat(f"a {word} one"))
        return str(answer.choices[0].message.content)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, words))
    expected = {"hard": "upstream=a", "quick": "upstream=b"}
    assert answers == [expected[w] for w in words]


def test_completions_embeddings_and_responses_are_routed(edge: Edge) -> None:
    client = edge.client()
    before = edge.counts()
    done = client.completions.create(model="auto", prompt=["say something", "quick"])
    assert done.choices[0].text == "upstream=b"
    assert edge.only_new(before)[1]["body"]["model"] == SMALL

    before = edge.counts()
    emb = client.embeddings.create(model="auto", input="a hard sentence", encoding_format="float")
    assert emb.model == BIG
    assert edge.only_new(before)[0] == "a"

    before = edge.counts()
    resp = client.responses.create(model="auto", instructions="be quick", input="anything")
    assert resp.output_text == "upstream=b"
    name, seen = edge.only_new(before)
    assert (name, seen["body"]["model"], seen["body"]["instructions"]) == ("b", SMALL, "be quick")


def test_each_route_has_its_own_candidates_and_router(edge: Edge) -> None:
    # model "cheap" → the "cheap" route → router "cheapest": the keyword does not matter there.
    before = edge.counts()
    answer = edge.client().chat.completions.create(**{**_chat("a hard question"), "model": "cheap"})
    assert answer.choices[0].message.content == "upstream=b"
    assert edge.only_new(before)[1]["body"]["model"] == SMALL


def test_requests_no_route_matches_pass_through_unchanged(edge: Edge) -> None:
    before = edge.counts()
    answer = edge.client().chat.completions.create(
        **{**_chat("a hard question"), "model": "my-own-model"}
    )
    assert answer.choices[0].message.content == "upstream=c"
    assert edge.only_new(before)[0] == "c"
    seen = edge.upstreams["c"].requests[-1]
    assert seen["body"]["model"] == "my-own-model"
    assert not any(k.lower().startswith("x-routeiq-") for k in seen["headers"])

    before = edge.counts()  # a path whose body the service does not read: the default route
    assert [m.id for m in edge.client().models.list()] == ["c"]
    assert edge.counts() == before  # GET /v1/models is not recorded by the fake; it answered


def test_streaming_answers_pass_through(edge: Edge) -> None:
    before = edge.counts()
    stream = edge.client().chat.completions.create(**_chat("quick, stream it"), stream=True)
    chunks = list(stream)
    assert len(chunks) == 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "upstream=b"
    assert {c.model for c in chunks} == {SMALL}
    name, seen = edge.only_new(before)
    assert (name, seen["body"]["stream"], seen["body"]["model"]) == ("b", True, SMALL)


def test_spoofed_routeiq_headers_are_ignored(edge: Edge) -> None:
    before = edge.counts()
    answer = edge.client().chat.completions.create(
        **_chat("quick please"),
        extra_headers={"x-routeiq-model": BIG, "x-routeiq-route": "cheap", "X-RouteIQ-Debug": "1"},
    )
    assert answer.choices[0].message.content == "upstream=b"
    name, seen = edge.only_new(before)
    assert name == "b"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    # x-routeiq-debug is not in Envoy's internal_only_headers: only the service removes it.
    assert {k: v for k, v in headers.items() if k.startswith("x-routeiq-")} == {
        "x-routeiq-model": SMALL,
        "x-routeiq-source": "STATIC",
    }


# -- malformed bodies -------------------------------------------------------------------------
def test_malformed_bodies_pass_through_by_default(edge: Edge) -> None:
    not_json = b'{"model": "auto", "messages": [' + SECRET.encode()
    wrong_shape = b'{"model": "auto", "messages": "hi"}'
    for body, upstream_saw in (
        (not_json, {"_raw": not_json.decode()}),
        (wrong_shape, json.loads(wrong_shape)),
    ):
        before = edge.counts()
        status, _, _ = edge.post_raw("/v1/chat/completions", body)
        assert status == 200
        assert edge.only_new(before) == (
            "c",
            {"path": "/v1/chat/completions", "headers": ANY, "body": upstream_saw},
        )
    # The stream machinery still routes the next request.
    assert (
        edge.client().chat.completions.create(**_chat("hard")).choices[0].message.content
        == "upstream=a"
    )


def test_malformed_bodies_are_rejected_when_configured(strict_edge: Edge) -> None:
    from openai import BadRequestError

    before = strict_edge.counts()
    status, headers, payload = strict_edge.post_raw(
        "/v1/chat/completions", b"{not json " + SECRET.encode()
    )
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json.loads(payload)["error"]
    assert error["code"] == "routeiq_malformed_body"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("body is not valid JSON")
    assert SECRET not in error["message"]

    with pytest.raises(BadRequestError) as caught:
        strict_edge.client().chat.completions.create(model="auto", messages="hello")
    assert caught.value.status_code == 400
    assert "'messages' must be an array, got a string" in str(caught.value)
    assert strict_edge.counts() == before  # no upstream saw either request

    answer = strict_edge.client().chat.completions.create(**_chat("quick"))
    assert answer.choices[0].message.content == "upstream=b"


# -- fail-open ------------------------------------------------------------------------------
def test_service_down_traffic_reaches_the_default_route(
    upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    edge = _start_edge(tmp_path, upstreams, "pass")
    try:
        client = edge.client()
        assert (
            client.chat.completions.create(**_chat("hard")).choices[0].message.content
            == "upstream=a"
        )
        assert edge.service.stop() == 0
        for spoof in ({}, {"x-routeiq-model": BIG}):
            before = edge.counts()
            start = time.perf_counter()
            answer = client.chat.completions.create(**_chat("hard"), extra_headers=spoof)
            assert time.perf_counter() - start < 2.0
            assert answer.choices[0].message.content == "upstream=c"
            name, seen = edge.only_new(before)
            assert (name, seen["body"]["model"]) == ("c", "auto")  # unchanged
            assert "x-routeiq-model" not in {k.lower() for k in seen["headers"]}
        assert edge.envoy.stat("http.openai.ext_proc.failure_mode_allowed") >= 2
    finally:
        edge.envoy.stop()
        edge.service.stop()


# -- a secured ext_proc stream ----------------------------------------------------------------
def test_envoy_reaches_the_service_over_mutual_tls_with_a_token(
    upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> None:
    """The service requires a client certificate and a token; Envoy's router cluster presents
    both (edge/envoy/render.py) and requests are routed. Without the token the same Envoy gets
    UNAUTHENTICATED on the stream and, failure_mode_allow, requests go on unrouted."""
    import trustme

    from edge.envoy.render import router_auth, router_tls
    from router_service.security.auth import hash_token
    from tests.support.procs import wait_serving

    ca, client_ca = trustme.CA(), trustme.CA()
    ca.issue_cert("router.internal").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_ca.cert_pem.write_to_path(str(tmp_path / "client-ca.pem"))
    edge_cert = client_ca.issue_cert("envoy-edge")
    edge_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "edge.pem"))
    edge_cert.private_key_pem.write_to_path(str(tmp_path / "edge.key"))
    config = yaml.safe_load(_router_config(tmp_path / "router.yaml", "pass").read_text())
    health = free_port()
    config["tls"] = {
        "cert_file": str(tmp_path / "server.pem"),
        "key_file": str(tmp_path / "server.pem"),
        "client_ca_file": str(tmp_path / "client-ca.pem"),
        "health_port": health,
    }
    token = "edge-token-4f1c2a"
    config["auth"] = {"tokens": [{"sha256": hash_token(token), "tenant": "envoy-edge"}]}
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(config))
    service = ServiceProcess(["--config", str(tmp_path / "router.yaml")])
    wait_serving(f"127.0.0.1:{health}", service.proc, 20)
    ports = (upstreams["a"].port, upstreams["b"].port, upstreams["c"].port)
    tls = router_tls(
        tmp_path / "ca.pem", "router.internal", tmp_path / "edge.pem", tmp_path / "edge.key"
    )
    envoys = {
        "with token": EnvoyProcess.edge(
            router_port=service.port,
            upstreams=ports,
            models=(BIG, SMALL),
            tls=tls,
            auth=router_auth(token),
        ).wait_ready(),
        "without": EnvoyProcess.edge(
            router_port=service.port, upstreams=ports, models=(BIG, SMALL), tls=tls
        ).wait_ready(),
    }
    try:
        for name, envoy in envoys.items():
            edge = Edge(service, envoy, upstreams)
            raw = edge.client().chat.completions.with_raw_response.create(
                **_chat("a hard question")
            )
            if name == "with token":
                assert raw.headers["x-routeiq-model"] == BIG
                assert raw.headers["x-upstream"] == "a"
            else:
                assert "x-routeiq-model" not in raw.headers
                assert raw.headers["x-upstream"] == "c"  # the default route, unrouted
    finally:
        for envoy in envoys.values():
            envoy.stop()
        service.stop()
    assert token not in service.log()


def test_one_trace_goes_from_envoy_through_the_service(
    upstreams: dict[str, FakeUpstream], tmp_path: Path, jaeger_server: Any
) -> None:
    """Envoy's OpenTelemetry tracer and the service both export to a real Jaeger: the request's
    trace (the client's traceparent) holds Envoy's spans and the service's, the service's
    ext_proc span a child of Envoy's, and no span holds the prompt."""
    from edge.envoy.render import otel_tracing
    from tests.support.jaeger import service_names, spans_of

    config = yaml.safe_load(_router_config(tmp_path / "router.yaml", "pass").read_text())
    config["telemetry"]["tracing"] = {"enabled": True, "endpoint": jaeger_server.otlp_grpc}
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(config))
    service = ServiceProcess(
        ["--config", str(tmp_path / "router.yaml")], env={"OTEL_BSP_SCHEDULE_DELAY": "100"}
    ).wait_ready()
    collector = urllib.parse.urlsplit(jaeger_server.otlp_grpc)
    envoy = EnvoyProcess.edge(
        router_port=service.port,
        upstreams=(upstreams["a"].port, upstreams["b"].port, upstreams["c"].port),
        models=(BIG, SMALL),
        tracing=otel_tracing(str(collector.hostname), int(collector.port or 0)),
    )
    trace_id = secrets.token_hex(16)
    try:
        edge = Edge(service, envoy.wait_ready(), upstreams)
        raw = edge.client().chat.completions.with_raw_response.create(
            **_chat(f"a hard question {SECRET}"),
            extra_headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert raw.headers.get("x-routeiq-model") == BIG, (
            service.log()[-3000:] + envoy.log()[-3000:]
        )
        found = jaeger_server.wait_for(
            trace_id,
            {
                "routeiq-edge-envoy": set(),
                "routeiq-router": {_PROCESS_SPAN, "routeiq.route"},
            },
        )
    finally:
        envoy.stop()
        service.stop()
    envoy_ids = {s["spanID"] for s in spans_of(found, "routeiq-edge-envoy")}
    ours = {s["operationName"]: s for s in spans_of(found, "routeiq-router")}
    server = ours[_PROCESS_SPAN]
    parents = [r["spanID"] for r in server["references"] if r["refType"] == "CHILD_OF"]
    assert parents and parents[0] in envoy_ids, "the service's span does not continue Envoy's"
    assert "routeiq.route" in ours
    assert service_names(found) == {"routeiq-edge-envoy", "routeiq-router"}
    assert SECRET not in str(found["spans"])
