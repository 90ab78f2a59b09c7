"""The real `routeiq-router serve` process, driven by real clients: grpcurl and our CLI."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import REPO, ServiceProcess, tool

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceProcess]:
    svc = ServiceProcess().wait_ready()
    yield svc
    assert svc.stop() == 0


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("grpcurl"), "-plaintext", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_grpcurl_lists_the_router_service(service: ServiceProcess) -> None:
    out = grpcurl(service.target, "list")
    assert out.returncode == 0, out.stderr
    services = out.stdout.split()
    assert "routeiq.router.v1.Router" in services
    assert "grpc.health.v1.Health" in services
    methods = grpcurl(service.target, "list", "routeiq.router.v1.Router").stdout.split()
    assert {
        f"routeiq.router.v1.Router.{m}"
        for m in ("Route", "RouteBatch", "ListRouters", "ReportOutcome")
    } <= set(methods)


def test_grpcurl_route_with_two_candidates(service: ServiceProcess) -> None:
    body = {
        "request_id": "g1",
        "prompt": "Summarise this paragraph.",
        "candidates": [
            {"name": "gpt-big", "input_price_per_mtok": 5},
            {"name": "small", "input_price_per_mtok": 0.2},
        ],
    }
    out = grpcurl("-d", json.dumps(body), service.target, "routeiq.router.v1.Router/Route")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["model"] == "small"
    assert answer["source"] == "STATIC"
    assert answer["request_id"] == "g1"


def test_grpcurl_bad_input_shows_the_reason(service: ServiceProcess) -> None:
    out = grpcurl(
        "-d", json.dumps({"prompt": "hi"}), service.target, "routeiq.router.v1.Router/Route"
    )
    assert out.returncode != 0
    assert "InvalidArgument" in out.stderr
    assert "no candidates: give at least one model" in out.stderr


def test_grpcurl_health_check(service: ServiceProcess) -> None:
    out = grpcurl(
        "-d",
        '{"service": "routeiq.router.v1.Router"}',
        service.target,
        "grpc.health.v1.Health/Check",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}


def test_start_up_objects_are_frozen_out_of_the_cyclic_gc(service: ServiceProcess) -> None:
    """Once serving, the process has moved what start-up left alive out of the collector's
    reach (full collections would otherwise scan all of it while calls wait)."""
    lines = [line for line in service.log().splitlines() if "start-up objects" in line]
    assert len(lines) == 1, service.log()[-2000:]
    frozen = int(lines[0].split("froze ")[1].split()[0])
    assert frozen > 50_000  # modules, config, gRPC and ONNX Runtime wrappers: far more than this


def test_cli_route_prints_the_decision(service: ServiceProcess) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "router_service",
            "route",
            "--target",
            service.target,
            "--prompt",
            "hello",
            "--candidates",
            "a:3:6,b:0.1:0.2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["model"] == "b"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "router_service",
            "route",
            "--target",
            service.target,
            "--prompt",
            "hello",
            "--candidates",
            "a",
            "--router",
            "ghost",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT: unknown router 'ghost'" in bad.stderr


def _serve_fails(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router_service", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**os.environ, "ROUTEIQ_SERVER__DRAIN_DELAY_S": "0"},
    )


def test_start_up_errors_say_what_is_wrong_without_a_traceback(
    service: ServiceProcess, tmp_path: Path
) -> None:
    taken = _serve_fails("--port", str(service.port))
    assert taken.returncode == 2
    assert f"cannot listen on 127.0.0.1:{service.port} (server.port)" in taken.stderr
    config = tmp_path / "typo.yaml"
    config.write_text("server:\n  prot: 5\n")
    typo = _serve_fails("--config", str(config))
    assert typo.returncode == 2
    assert f"invalid configuration in {config}:\n  server.prot: Extra inputs" in typo.stderr
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    refused = _serve_fails("--port", "0", "--bundle", str(bundle))
    assert refused.returncode == 2
    assert "invalid manifest.json:\n  name: Field required" in refused.stderr
    for out in (taken, typo, refused):
        assert "Traceback" not in out.stderr and "_FromFile" not in out.stderr, out.stderr
