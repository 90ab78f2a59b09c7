"""Property-based fuzzing of the real service process (hypothesis): random valid-shaped
requests and raw bytes for every method, ext_proc streams included. The service never answers
UNKNOWN or INTERNAL, never crashes, never puts a traceback or a source path in a message, and
answers every well-formed Route with one of its candidates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_service._proto.envoy.config.core.v3 import base_pb2 as core
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from router_service.proto import SERVICE_NAME, pb, pb_grpc
from router_service.surfaces.ext_proc import EXT_PROC_SERVICE_NAME
from tests.support.procs import ServiceProcess

FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
ROUTERS = ["", "llmrouter-knn-tfidf", "llmrouter-tier-tfidf", "cheapest", "round-robin", "nope"]
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def service(default_bundle: Path, tier_bundle: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(
        ["--bundle", str(default_bundle), "--bundle", str(tier_bundle)],
        env={"ROUTEIQ_EXT_PROC__ROUTES": '[{"name": "all", "candidates": ["a", "b"]}]'},
    ).wait_ready(60)
    yield proc
    assert proc.proc.poll() is None, "the service died during the fuzz run"
    assert "Traceback" not in proc.log()
    proc.stop()


@pytest.fixture(scope="module")
def channel(service: ServiceProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.target) as ch:
        yield ch


def check_error(exc: grpc.RpcError) -> None:
    code, details = exc.code(), exc.details() or ""
    assert code not in FORBIDDEN, (code, details)
    assert "Traceback" not in details and ".py" not in details, details


prices = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 100))


@st.composite
def route_requests(draw: st.DrawFn) -> pb.RouteRequest:
    names = draw(st.lists(st.text(max_size=12), min_size=0, max_size=6))
    req = pb.RouteRequest(
        request_id=draw(st.text(max_size=40)),
        router=draw(st.sampled_from(ROUTERS) | st.text(max_size=10)),
        labels=draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)),
    )
    for name in names:
        cand = req.candidates.add(name=name)
        price_in, price_out = draw(prices), draw(prices)
        if price_in is not None:
            cand.input_price_per_mtok = price_in
        if price_out is not None:
            cand.output_price_per_mtok = price_out
    which = draw(st.sampled_from(["prompt", "messages", "embedding", "none"]))
    if which == "prompt":
        req.prompt = draw(st.text(max_size=300))
    elif which == "messages":
        for role, content in draw(
            st.lists(st.tuples(st.text(max_size=10), st.text(max_size=80)), max_size=4)
        ):
            req.messages.turns.add(role=role, content=content)
    elif which == "embedding":
        req.embedding.values.extend(
            draw(st.lists(st.floats(width=32, allow_nan=True), max_size=16))
        )
    if draw(st.booleans()):
        req.policy.cost_weight = draw(st.floats(allow_nan=True, allow_infinity=True))
    if draw(st.booleans()):
        req.policy.min_quality = draw(st.floats(allow_nan=True, allow_infinity=True))
    return req


@FUZZ
@given(req=route_requests())
def test_random_route_requests(channel: grpc.Channel, req: pb.RouteRequest) -> None:
    stub = pb_grpc.RouterStub(channel)
    try:
        answer = stub.Route(req, timeout=10)
    except grpc.RpcError as exc:
        check_error(exc)
        return
    assert answer.model in {c.name for c in req.candidates}


@FUZZ
@given(
    method=st.sampled_from(["Route", "RouteBatch", "ListRouters", "ReportOutcome"]),
    body=st.binary(max_size=200),
)
def test_raw_bytes_to_every_method(channel: grpc.Channel, method: str, body: bytes) -> None:
    call = channel.unary_unary(f"/{SERVICE_NAME}/{method}")
    try:
        call(body, timeout=10)
    except grpc.RpcError as exc:
        check_error(exc)


@FUZZ
@given(
    frames=st.lists(
        st.one_of(
            st.binary(max_size=100),
            st.builds(
                lambda path: ep.ProcessingRequest(
                    request_headers=ep.HttpHeaders(
                        headers=core.HeaderMap(
                            headers=[core.HeaderValue(key=":path", raw_value=path)]
                        )
                    )
                ).SerializeToString(),
                st.sampled_from([b"/v1/chat/completions", b"/v1/completions", b"/x"]),
            ),
            st.builds(
                lambda body: ep.ProcessingRequest(
                    request_body=ep.HttpBody(body=body, end_of_stream=True)
                ).SerializeToString(),
                st.binary(max_size=200)
                | st.just(b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_ext_proc_streams(channel: grpc.Channel, frames: list[bytes]) -> None:
    call = channel.stream_stream(f"/{EXT_PROC_SERVICE_NAME}/Process")
    try:
        for _ in call(iter(frames), timeout=10):
            pass
    except grpc.RpcError as exc:
        check_error(exc)


def test_the_fuzzed_ext_proc_surface_is_live(channel: grpc.Channel) -> None:
    """The streams above reach a working ext_proc (not UNIMPLEMENTED): a valid exchange."""
    headers = ep.ProcessingRequest(
        request_headers=ep.HttpHeaders(
            headers=core.HeaderMap(
                headers=[core.HeaderValue(key=":path", raw_value=b"/v1/chat/completions")]
            )
        )
    )
    body = ep.ProcessingRequest(
        request_body=ep.HttpBody(
            body=b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}',
            end_of_stream=True,
        )
    )
    call = channel.stream_stream(
        f"/{EXT_PROC_SERVICE_NAME}/Process",
        request_serializer=ep.ProcessingRequest.SerializeToString,
        response_deserializer=ep.ProcessingResponse.FromString,
    )
    replies = list(call(iter([headers, body]), timeout=10))
    assert [r.WhichOneof("response") for r in replies] == ["request_headers", "request_body"]
