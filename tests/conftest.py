"""Shared fixtures: an in-process server on 127.0.0.1:0 and the settings it runs with."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from router_service.config import Settings, load_settings
from router_service.proto import pb_grpc
from router_service.server import RouterServer

ServerFactory = Callable[..., Any]

# LiteLLM, wherever a test imports it, reads its bundled cost map and fetches nothing: the
# tests reach no address but 127.0.0.1 (and without it an import retries for seconds).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        server = {"port": 0, "grace_period_s": 2.0, **overrides.pop("server", {})}
        telemetry = {
            "outcomes_path": str(tmp_path / "outcomes.jsonl"),
            "shadow_path": str(tmp_path / "shadow.jsonl"),
            "events": {
                "path": str(tmp_path / "events.jsonl"),
                "hash_key_file": str(tmp_path / "prompt-hash.key"),
            },
            **overrides.pop("telemetry", {}),
        }
        return load_settings(server=server, telemetry=telemetry, **overrides)

    return make


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[[Settings], Any]]:
    """Start a real grpc.aio RouterServer on a free port; stopped at the end of the test."""
    started: list[RouterServer] = []

    async def start(settings: Settings) -> RouterServer:
        server = RouterServer(settings)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(0)


@pytest.fixture
async def router_stub(
    start_server: Callable[[Settings], Any], make_settings: Callable[..., Settings]
) -> AsyncIterator[pb_grpc.RouterStub]:
    server = await start_server(make_settings())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.RouterStub(channel)


@pytest.fixture
def redis_server() -> Any:
    """A real redis-server of the test's own on a free port (killable by fault tests)."""
    from tests.support.redis import RedisServer

    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Any:
    from tests.support.redis import RedisCluster

    cluster = RedisCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def _session_temp_dir() -> Iterator[Path]:
    """Every temporary folder of the run — this process's and its children's (services,
    proxies, Redis, bundle builds) — goes under one folder, removed when the run ends."""
    import os
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="routeiq-tests-"))
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(root), str(root)
    yield root
    if saved[0] is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]
    shutil.rmtree(root, ignore_errors=True)


def _make_bundles() -> Path:
    """`make bundle`, as `make run` runs it: the bundles directory (~10 s per bundle the first
    time, then nothing)."""
    import subprocess

    from tests.support.procs import REPO

    made = subprocess.run(
        ["make", "bundle"], check=False, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return REPO / "var" / "bundles"


@pytest.fixture(scope="session")
def default_bundle() -> Path:
    """The default learned router exactly as `make run` builds it (KNN over TF-IDF on the
    LLMRouter data shipped in converters/data)."""
    return _make_bundles() / "default"


@pytest.fixture(scope="session")
def tier_bundle() -> Path:
    """The tier router exactly as `make run` builds it (linear over TF-IDF per price rung of
    the LLMRouter data shipped in converters/data)."""
    return _make_bundles() / "tier"


@pytest.fixture(scope="session")
def minio_server() -> Any:
    """A real MinIO server (S3) on a free port with a temporary data directory."""
    from tests.support.minio import MinioServer

    server = MinioServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jaeger_server() -> Any:
    """A real Jaeger (OTLP in, query API out) on free ports, traces in memory."""
    from tests.support.jaeger import JaegerServer

    server = JaegerServer()
    yield server
    server.stop()
