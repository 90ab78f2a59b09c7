"""Graceful shutdown of the real process under a load of concurrent calls."""

import re
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_service.proto import pb, pb_grpc
from tests.support.procs import ServiceProcess

pytestmark = pytest.mark.e2e

CONFIG = """
server: {grace_period_s: 5}
strategies: {slow: "tests.support.strategies:Slow"}
routers: [{name: slow, strategy: slow, params: {delay_s: 0.4}}]
default_router: slow
engine: {executor_threads: 16, offload_timeout_ms: 5000}
"""


def test_sigterm_lets_calls_in_flight_finish(tmp_path: Path) -> None:
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(CONFIG)
    svc = ServiceProcess(["--config", str(cfg)]).wait_ready()
    channel = grpc.insecure_channel(svc.target)
    stub = pb_grpc.RouterStub(channel)
    request = pb.RouteRequest(prompt="p", candidates=[pb.Candidate(name="a")])
    results: list[str] = []
    started = threading.Barrier(13)

    def call() -> None:
        started.wait()
        try:
            results.append(stub.Route(request, timeout=10).model)
        except grpc.RpcError as exc:
            results.append(exc.code().name)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.15)  # every call is now inside the 0.4 s strategy
    t0 = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    code = svc.proc.wait(10)
    elapsed = time.monotonic() - t0
    channel.close()
    assert results == ["a"] * 12, results
    assert code == 0, svc.log()
    assert elapsed < 5 + 2, f"exit took {elapsed:.1f}s, grace is 5 s"
    again = grpc.insecure_channel(svc.target)
    with pytest.raises(grpc.RpcError) as info:  # and it no longer takes calls
        pb_grpc.RouterStub(again).Route(request, timeout=2)
    again.close()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    svc.stop()


def _health(channel: grpc.Channel) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    return int(reply.status)


def test_sigterm_says_not_serving_and_keeps_taking_calls_for_the_drain_delay() -> None:
    """Reproduction 12: within 60 ms of SIGTERM health and new calls got UNAVAILABLE, so a
    load balancer never saw NOT_SERVING while calls were still accepted."""
    svc = ServiceProcess(env={"ROUTEIQ_SERVER__DRAIN_DELAY_S": "2"}).wait_ready()
    request = pb.RouteRequest(prompt="p", candidates=[pb.Candidate(name="a")])
    with grpc.insecure_channel(svc.target) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        t0 = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert pb_grpc.RouterStub(channel).Route(request, timeout=2).model == "a"
        code = svc.proc.wait(10)
    assert code == 0, svc.log()
    assert time.monotonic() - t0 >= 2.0
    assert "draining: NOT_SERVING, still taking calls for 2.0 s" in svc.log()
    svc.stop()


def test_sigterm_while_routers_load_stops_gracefully(tmp_path: Path) -> None:
    """Reproduction 12: a SIGTERM during bundle loading skipped the graceful stop. Loading
    runs off the event loop, so health answers (NOT_SERVING) meanwhile."""
    cfg = tmp_path / "slow-load.yaml"
    cfg.write_text(
        'strategies: {slow-to-load: "tests.support.strategies:SlowToLoad"}\n'
        "routers: [{name: s, strategy: slow-to-load, params: {load_s: 3}}]\n"
        "default_router: s\n"
    )
    svc = ServiceProcess(["--config", str(cfg)], env={"ROUTEIQ_SERVER__DRAIN_DELAY_S": "30"})
    deadline = time.monotonic() + 20
    status = None
    with grpc.insecure_channel(svc.target) as channel:
        while status is None and time.monotonic() < deadline:
            try:
                status = _health(channel)
            except grpc.RpcError:
                time.sleep(0.05)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING, svc.log()
    svc.proc.send_signal(signal.SIGTERM)
    code = svc.proc.wait(15)  # no 30 s drain: it never served
    assert code == 0, svc.log()
    assert "signal during start-up: stopping" in svc.log()
    svc.stop()


def _worker_pids(svc: ServiceProcess, want: int, timeout_s: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = {int(m) for m in re.findall(r" (\d+) router_service.server: serving", svc.log())}
        if len(pids) >= want:
            return pids
        time.sleep(0.1)
    raise TimeoutError(svc.log())


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_workers_share_the_port_and_stop_together() -> None:
    svc = ServiceProcess(["--workers", "2"]).wait_ready()
    pids = _worker_pids(svc, 2)
    assert len(pids) == 2
    assert {_parent_of(pid) for pid in pids} == {svc.proc.pid}
    for _ in range(20):  # every new connection is answered, whichever worker takes it
        with grpc.insecure_channel(svc.target) as channel:
            reply = pb_grpc.RouterStub(channel).Route(
                pb.RouteRequest(prompt="p", candidates=[pb.Candidate(name="a")]), timeout=5
            )
            assert reply.model == "a"
    assert svc.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
