"""The LiteLLM edge: the real proxy with the RouteIQ plug-in, the real service, fake upstreams.

The app is the official ``openai`` client pointed at the proxy. The service routes with the
``Keyword`` strategy (prompts with "math" → upstream A, others → B); a ``slow`` router answers
after the edge's deadline. The last tests stop the service to check that the proxy fails open.
A few tests drive the plug-in in-process against a recording fake service, to check exactly
what it sends (candidates, prices, input, request id, trace context).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from edge.devtools.fake_upstream import FakeUpstream
from router_service.proto import pb, pb_grpc
from tests.support.litellm_proxy import (
    OFFLINE_ENV,
    LiteLLMProxy,
    deployment,
    litellm_missing,
    proxy_config,
)
from tests.support.procs import ServiceProcess

pytestmark = pytest.mark.e2e

_MISSING = litellm_missing()
if _MISSING is not None:
    # never skipped: `make test` installs the edge requirements, so a missing litellm is a failure
    pytest.fail(_MISSING, pytrace=False)

import openai  # noqa: E402 - after the check above, which explains a missing install

A, B = "openai/model-a", "openai/model-b"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
BOUND_S = 2.0  # generous per-request bound for fail-open: deadline (30 ms) + normal latency


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeUpstream]]:
    ups = {"A": FakeUpstream("A"), "B": FakeUpstream("B")}
    yield ups
    for up in ups.values():
        up.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("svc")
    config = {
        "strategies": {
            "keyword": "tests.support.edge_strategies:Keyword",
            "slow": "tests.support.strategies:Slow",
        },
        "routers": [
            {
                "name": "keyword",
                "strategy": "keyword",
                "params": {
                    "keyword": "math",
                    "match": [A, "openai/embed-math"],
                    "otherwise": [B, "openai/embed-other"],
                },
            },
            {"name": "slow", "strategy": "slow", "params": {"delay_s": 0.3}},
        ],
        "default_router": "keyword",
        "engine": {"offload_timeout_ms": 2000},  # so `slow` really answers late
        "telemetry": {"outcomes_path": str(tmp / "outcomes.jsonl")},
    }
    path = tmp / "service.yaml"
    path.write_text(yaml.safe_dump(config))
    svc = ServiceProcess(["--config", str(path)]).wait_ready()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    upstreams: dict[str, FakeUpstream],
    service: ServiceProcess,
) -> Iterator[LiteLLMProxy]:
    a, b = (f"{upstreams[n].base_url}/v1" for n in ("A", "B"))
    config = proxy_config(
        tmp_path_factory.mktemp("proxy") / "config.yaml",
        [
            deployment("routeiq-auto", A, a, 3e-6, 15e-6),
            deployment("routeiq-auto", B, b, 1.5e-7, 6e-7),
            deployment("routeiq-embed", "openai/embed-math", a),
            deployment("routeiq-embed", "openai/embed-other", b),
        ],
        num_retries=0,
    )
    with LiteLLMProxy.running(config, env={"ROUTEIQ_EDGE_TARGET": service.target}) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(proxy: LiteLLMProxy) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{proxy.base_url}/v1", api_key=proxy.master_key, max_retries=0, timeout=30
    )


def chat(client: openai.OpenAI, prompt: str, **headers: str) -> tuple[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model="routeiq-auto",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}],
        extra_headers=headers,
    )
    return raw.parse().choices[0].message.content or "", raw.headers


PROMPTS = [
    ("Solve this math problem: 2x + 3 = 7", "A"),
    ("Write a haiku about autumn", "B"),
    ("MATH homework: integrate x^2", "A"),
    ("Tell me a story about a dragon", "B"),
]


def test_router_decision_chooses_the_upstream(client: openai.OpenAI) -> None:
    for round_ in range(3):  # the proxy's own shuffle would agree only half the time
        for i, (prompt, upstream) in enumerate(PROMPTS):
            text, headers = chat(client, prompt, **{"x-request-id": f"rid-{round_}-{i}"})
            assert text == f"upstream={upstream}", (prompt, text)
            assert headers["x-routeiq-model"] == (A if upstream == "A" else B)
            assert headers["x-routeiq-router"] == "keyword"
            assert headers["x-routeiq-source"] == "STATIC"
            assert "x-routeiq-fail-open" not in headers
            assert int(headers["x-routeiq-edge-us"]) > 0


def test_streaming_goes_through_the_edge(client: openai.OpenAI) -> None:
    for prompt, upstream in PROMPTS[:2]:
        raw = client.chat.completions.with_raw_response.create(
            model="routeiq-auto", messages=[{"role": "user", "content": prompt}], stream=True
        )
        assert raw.headers["x-routeiq-model"] == (A if upstream == "A" else B)
        chunks = [c.choices[0].delta.content or "" for c in raw.parse() if c.choices]
        assert len(chunks) >= 2  # streamed in pieces, not one answer
        text = "".join(chunks)
        assert text == f"upstream={upstream}"


def test_embeddings_go_through_the_edge(
    client: openai.OpenAI, upstreams: dict[str, FakeUpstream]
) -> None:
    cases = (("math vectors", "A", "embed-math"), ("poems", "B", "embed-other"))
    for text, upstream, name in cases:
        raw = client.embeddings.with_raw_response.create(model="routeiq-embed", input=text)
        vector = raw.parse().data[0].embedding
        assert vector[0] == float(upstreams[upstream].port % 97)  # the upstream's signature
        assert raw.headers["x-routeiq-model"] == f"openai/{name}"


def test_responses_api_goes_through_the_edge(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="routeiq-auto", input="math: 1+1?")
    assert raw.parse().output_text == "upstream=A"
    assert raw.headers["x-routeiq-model"] == A


def test_anthropic_messages_api_goes_through_the_edge(proxy: LiteLLMProxy) -> None:
    for text, upstream in (("a math question", "A"), ("a poem", "B")):
        messages = [{"role": "user", "content": text}]
        body = {"model": "routeiq-auto", "max_tokens": 16, "messages": messages}
        request = urllib.request.Request(
            f"{proxy.base_url}/v1/messages",
            data=json.dumps(body).encode(),
            headers={"x-api-key": proxy.master_key, "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = json.loads(reply.read())
            assert reply.headers["x-routeiq-model"] == (A if upstream == "A" else B)
        assert answer["content"][0]["text"] == f"upstream={upstream}"


def test_request_id_and_traceparent_reach_upstream_headers_unchanged(
    client: openai.OpenAI, upstreams: dict[str, FakeUpstream]
) -> None:
    """The edge adds no x-routeiq-* or gRPC metadata to what the upstream receives."""
    before = len(upstreams["A"].requests)
    chat(client, "math again", **{"x-request-id": "rid-up", "traceparent": TRACEPARENT})
    sent = upstreams["A"].requests[before:]
    assert len(sent) == 1
    assert not any(k.lower().startswith("x-routeiq") for k in sent[0]["headers"])


def fail_open_rounds(client: openai.OpenAI, reason: str, **headers: str) -> set[str]:
    """16 "math" requests; each must succeed within the bound and say why it failed open."""
    seen: set[str] = set()
    for i in range(16):
        started = time.perf_counter()
        text, got = chat(client, f"math question {i}", **headers)
        assert time.perf_counter() - started < BOUND_S
        assert got["x-routeiq-fail-open"] == reason
        assert "x-routeiq-model" not in got
        seen.add(text)
    return seen


def test_fail_open_when_the_service_answers_after_the_deadline(client: openai.OpenAI) -> None:
    seen = fail_open_rounds(client, "timeout", **{"x-routeiq-router": "slow"})
    # the proxy's simple-shuffle decided: math prompts reached B too (P(all A) = 2^-16)
    assert seen == {"upstream=A", "upstream=B"}


def test_fail_open_when_the_service_is_down(client: openai.OpenAI, service: ServiceProcess) -> None:
    """Stops the module's service: keep it after every other test that uses the service."""
    chat(client, "math before the stop")
    assert service.stop() == 0
    seen = fail_open_rounds(client, "unavailable")
    assert seen == {"upstream=A", "upstream=B"}


# -- the plug-in in-process, against a recording fake service -----------------------------------


class Recorder(pb_grpc.RouterServicer):
    def __init__(self) -> None:
        self.requests: list[pb.RouteRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.answer = ""
        self.delay_s = 0.0

    async def Route(self, request: pb.RouteRequest, context: Any) -> pb.RouteResponse:
        self.requests.append(request)
        self.metadata.append({k: v for k, v in context.invocation_metadata()})
        await asyncio.sleep(self.delay_s)
        return pb.RouteResponse(
            request_id=request.request_id,
            model=self.answer or request.candidates[-1].name,
            router="recorder",
            router_version="v7",
            source=pb.MODEL,
        )


@pytest.fixture(scope="module")
def plugin_module() -> Any:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    from edge.litellm import plugin

    return plugin


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    servicer = Recorder()
    server = grpc.aio.server()
    pb_grpc.add_RouterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)


def deployments() -> list[dict[str, Any]]:
    return [
        {
            "model_name": "g",
            "litellm_params": {"model": A, "input_cost_per_token": 3e-6},
            "model_info": {"id": "id-a", "output_cost_per_token": 1.5e-5},
        },
        {"model_name": "g", "litellm_params": {"model": B}, "model_info": {"id": "id-b"}},
        {"model_name": "g", "litellm_params": {"model": B}, "model_info": {"id": "id-b2"}},
        {
            "model_name": "g",
            "litellm_params": {"model": "openai/x"},
            "model_info": {"id": "id-c", "routeiq_model": "gpt-4o-mini"},
        },
    ]


def request_kwargs(**headers: str) -> dict[str, Any]:
    return {"litellm_call_id": "call-1", "metadata": {"headers": headers}}


async def test_plugin_sends_candidates_input_and_trace_context(
    plugin_module: Any, recorder: tuple[Recorder, str]
) -> None:
    servicer, target = recorder
    servicer.answer = B
    edge = plugin_module.RouteIQRouter(target=target, deadline_ms=2000, router="r1")
    kwargs = request_kwargs(**{"x-request-id": "rid-1", "traceparent": TRACEPARENT})
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "2+2?"}, {"type": "image_url"}]},
    ]
    chosen = await edge.async_filter_deployments("g", deployments(), messages, kwargs)
    assert [d["model_info"]["id"] for d in chosen] == ["id-b", "id-b2"]  # both serve B
    sent = servicer.requests[0]
    assert sent.request_id == "rid-1"
    assert sent.router == "r1"
    assert [(t.role, t.content) for t in sent.messages.turns] == [
        ("system", "be brief"),
        ("user", "2+2?"),
    ]
    by_name = {c.name: c for c in sent.candidates}
    assert list(by_name) == [A, B, "gpt-4o-mini"]
    assert by_name[A].input_price_per_mtok == pytest.approx(3.0)
    assert by_name[A].output_price_per_mtok == pytest.approx(15.0)
    assert not by_name[B].HasField("input_price_per_mtok")
    assert by_name["gpt-4o-mini"].input_price_per_mtok == pytest.approx(0.15)  # LiteLLM's map
    assert servicer.metadata[0]["traceparent"] == TRACEPARENT
    assert servicer.metadata[0]["x-request-id"] == "rid-1"
    assert sent.labels["model_group"] == "g"
    headers = await edge.async_post_call_response_headers_hook(kwargs, None, None)
    assert headers["x-routeiq-model"] == B
    assert headers["x-routeiq-router"] == "recorder"
    assert headers["x-routeiq-router-version"] == "v7"
    assert headers["x-routeiq-source"] == "MODEL"
    assert edge.counters.routed == 1
    await edge.close()


async def test_plugin_starts_the_call_early_and_awaits_it_at_the_pick(
    plugin_module: Any, recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy's pre-call hook starts the Route call from the group's deployments; the pick
    awaits that call when it is the same call (one request reaches the service), and calls
    afresh when the request changed in between."""
    import litellm
    from litellm.proxy import proxy_server

    servicer, target = recorder
    servicer.answer = B
    monkeypatch.setattr(proxy_server, "llm_router", litellm.Router(model_list=deployments()))
    edge = plugin_module.RouteIQRouter(target=target, deadline_ms=2000, router="")
    messages = [{"role": "user", "content": "early bird"}]
    data = {"model": "g", "messages": messages, **request_kwargs(**{"x-request-id": "rid-7"})}
    assert await edge.async_pre_call_hook(None, None, data, "acompletion") is None
    chosen = await edge.async_filter_deployments("g", deployments(), messages, data)
    assert [d["model_info"]["id"] for d in chosen] == ["id-b", "id-b2"]
    assert (len(servicer.requests), edge.counters.early, edge.counters.routed) == (1, 1, 1)
    await edge.async_pre_call_hook(None, None, data, "acompletion")
    changed = [{"role": "user", "content": "a different question"}]
    await edge.async_filter_deployments("g", deployments(), changed, data)
    assert [t.content for t in servicer.requests[-1].messages.turns] == ["a different question"]
    assert (edge.counters.early, edge.counters.routed) == (1, 2)
    await edge.close()


async def test_an_early_call_that_failed_before_the_pick_is_not_used(
    plugin_module: Any, recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiteLLM may be busy past the deadline between the hooks: the pick then makes a call of
    its own instead of failing open on the early call's timeout."""
    import litellm
    from litellm.proxy import proxy_server

    servicer, target = recorder
    servicer.answer, servicer.delay_s = B, 0.3
    monkeypatch.setattr(proxy_server, "llm_router", litellm.Router(model_list=deployments()))
    edge = plugin_module.RouteIQRouter(target=target, deadline_ms=100, router="")
    messages = [{"role": "user", "content": "slow start"}]
    data = {"model": "g", "messages": messages, **request_kwargs()}
    await edge.async_pre_call_hook(None, None, data, "acompletion")
    await asyncio.sleep(0.25)  # the early call's 100 ms deadline passes
    servicer.delay_s = 0.0
    chosen = await edge.async_filter_deployments("g", deployments(), messages, data)
    assert [d["model_info"]["id"] for d in chosen] == ["id-b", "id-b2"]
    assert (edge.counters.early, edge.counters.routed, edge.counters.timeout) == (0, 1, 0)
    await edge.close()


async def test_plugin_prompt_input_and_call_id(
    plugin_module: Any, recorder: tuple[Recorder, str]
) -> None:
    servicer, target = recorder
    edge = plugin_module.RouteIQRouter(target=target, deadline_ms=2000, router="")
    kwargs = {"litellm_call_id": "call-9", "input": ["vector one", "vector two"]}
    chosen = await edge.async_filter_deployments("g", deployments()[:2], None, kwargs)
    assert [d["model_info"]["id"] for d in chosen] == ["id-b"]
    assert servicer.requests[0].prompt == "vector one\nvector two"
    assert servicer.requests[0].request_id == "call-9"
    assert "traceparent" not in servicer.metadata[0]
    await edge.close()


async def test_plugin_fails_open_and_counts_why(
    plugin_module: Any, recorder: tuple[Recorder, str]
) -> None:
    servicer, target = recorder
    edge = plugin_module.RouteIQRouter(target=target, deadline_ms=50)
    offered = deployments()
    assert await edge.warm(2.0)

    servicer.answer = "not-offered"
    kwargs = request_kwargs()
    assert await edge.async_filter_deployments("g", offered, None, {**kwargs, "prompt": "x"}) == (
        offered
    )
    assert edge.counters.unknown_model == 1
    assert await edge.async_post_call_response_headers_hook(kwargs, None, None) == {
        "x-routeiq-fail-open": "unknown_model"
    }

    servicer.answer, servicer.delay_s = "", 0.5
    started = time.perf_counter()
    assert await edge.async_filter_deployments("g", offered, None, {"prompt": "x"}) == offered
    assert time.perf_counter() - started < 0.3
    assert edge.counters.timeout == 1

    assert await edge.async_filter_deployments("g", offered, None, {"prompt": [1, 2]}) == offered
    assert edge.counters.no_input == 1
    assert (
        await edge.async_filter_deployments("g", offered[:1], None, {"prompt": "x"})
        == (offered[:1])
    )
    assert edge.counters.skipped_single == 1
    assert edge.counter_values()["fail_open"] == 3
    await edge.close()

    down = plugin_module.RouteIQRouter(target="127.0.0.1:9", deadline_ms=30)
    started = time.perf_counter()
    assert await down.async_filter_deployments("g", offered, None, {"prompt": "x"}) == offered
    assert time.perf_counter() - started < 0.3
    assert down.counters.unavailable == 1
    await down.close()


async def test_plugin_never_echoes_client_metadata_as_headers(plugin_module: Any) -> None:
    edge = plugin_module.RouteIQRouter(target="127.0.0.1:9")
    forged = {"metadata": {"routeiq": {"model": "x\r\nset-cookie: a=b", "router": "r"}}}
    assert await edge.async_post_call_response_headers_hook(forged, None, None) is None
    real = {"metadata": {"routeiq": plugin_module.Decision(model="m\r\nx: y", router="r")}}
    headers = await edge.async_post_call_response_headers_hook(real, None, None)
    assert headers == {"x-routeiq-model": "m??x: y", "x-routeiq-router": "r"}


def test_plugin_config_from_the_environment(
    plugin_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTEIQ_EDGE_TARGET", "router:50051")
    monkeypatch.setenv("ROUTEIQ_EDGE_DEADLINE_MS", "12.5")
    monkeypatch.setenv("ROUTEIQ_EDGE_ROUTER", "learned")
    monkeypatch.setenv("ROUTEIQ_EDGE_MODEL_GROUPS", "routeiq-auto, other")
    edge = plugin_module.RouteIQRouter()
    assert (edge.target, edge.deadline_s, edge.router) == ("router:50051", 0.0125, "learned")
    assert edge.model_groups == {"routeiq-auto", "other"}
    monkeypatch.setenv("ROUTEIQ_EDGE_DEADLINE_MS", "soon")
    with pytest.raises(ValueError, match="ROUTEIQ_EDGE_DEADLINE_MS"):
        plugin_module.RouteIQRouter()


def test_config_files_name_the_plugin() -> None:
    repo = Path(__file__).resolve().parents[2]
    for path in (repo / "edge/litellm/config.yaml", repo / "deploy/litellm/config.yaml"):
        config = yaml.safe_load(path.read_text())
        callbacks = config["litellm_settings"]["callbacks"]
        callbacks = [callbacks] if isinstance(callbacks, str) else callbacks
        assert "edge.litellm.plugin.routeiq_router" in callbacks
        if "otel" in callbacks:  # LiteLLM's spans then carry no prompts
            assert config["litellm_settings"]["turn_off_message_logging"] is True
        assert config["router_settings"]["routing_strategy"] == "simple-shuffle"
        groups = {d["model_name"] for d in config["model_list"]}
        assert "routeiq-auto" in groups


async def test_plugin_speaks_mutual_tls_and_sends_its_token(
    plugin_module: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ROUTEIQ_EDGE_TLS_* and ROUTEIQ_EDGE_TOKEN: a real mutual-TLS handshake (trustme)."""
    import trustme

    ca, client_ca = trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("router.internal")
    client_cert = client_ca.issue_cert("litellm")
    servicer = Recorder()
    server = grpc.aio.server()
    pb_grpc.add_RouterServicer_to_server(servicer, server)
    creds = grpc.ssl_server_credentials(
        [(server_cert.private_key_pem.bytes(), server_cert.cert_chain_pems[0].bytes())],
        root_certificates=client_ca.cert_pem.bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    monkeypatch.setenv("ROUTEIQ_EDGE_TLS_CA", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("ROUTEIQ_EDGE_TLS_CERT", str(tmp_path / "client.pem"))
    monkeypatch.setenv("ROUTEIQ_EDGE_TLS_KEY", str(tmp_path / "client.key"))
    monkeypatch.setenv("ROUTEIQ_EDGE_TLS_SERVER_NAME", "router.internal")
    monkeypatch.setenv("ROUTEIQ_EDGE_TOKEN", "edge-secret-token")
    try:
        servicer.answer = B
        edge = plugin_module.RouteIQRouter(target=f"127.0.0.1:{port}", deadline_ms=5000)
        messages = [{"role": "user", "content": "2+2?"}]
        chosen = await edge.async_filter_deployments("g", deployments(), messages, request_kwargs())
        assert [d["model_info"]["id"] for d in chosen] == ["id-b", "id-b2"]
        assert servicer.metadata[0]["authorization"] == "Bearer edge-secret-token"
    finally:
        await server.stop(0)
