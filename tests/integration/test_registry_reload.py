"""Hot reload from a registry, under a concurrent Route load on the real service process.

For both registry sources (a directory with filesystem events, and a real MinIO server):
a valid new version swaps in with no failed call; a truncated, tampered, wrongly signed,
oversized or disallowed-operator version is refused with no failed call while the version
serving keeps serving; 20 publications in quick succession end with the newest serving.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from converters.registry_ops import publish
from router_service.bundles.signing import generate_keypair, sign_bundle
from router_service.bundles.store import DirStore, RegistryStore, S3Store
from router_service.config import S3Settings
from router_service.proto import pb, pb_grpc
from tests.support.bundles import MODELS, embedding_bundle
from tests.support.load import RouteLoad
from tests.support.procs import ServiceProcess

ROUTER = "emb-linear"
CAP = 64 * 1024  # bundle_max_file_bytes of the service under test


def route_request(request_id: str) -> pb.RouteRequest:
    return pb.RouteRequest(
        request_id=request_id,
        router=ROUTER,
        embedding=pb.Embedding(values=[1.0, 0.0, 0.0, 0.0]),
        candidates=[pb.Candidate(name=m) for m in MODELS],
    )


class Publisher:
    """Builds bundles and puts them in a registry, validly or not."""

    def __init__(self, store: RegistryStore, tmp: Path) -> None:
        self.store = store
        self.tmp = tmp
        self.key = tmp / "keys" / "release"
        self.other_key = tmp / "keys" / "other"
        generate_keypair(self.key)
        generate_keypair(self.other_key)

    def bundle(self, **kwargs: Any) -> Path:
        return embedding_bundle(self.tmp / f"b-{uuid.uuid4().hex}", name=ROUTER, **kwargs)

    def good(self) -> int:
        return publish(self.store, self.bundle(version=uuid.uuid4().hex), self.key).version

    def raw(self, bundle: Path, key: Path | None = None) -> int:
        """Publish without verification (a broken or hostile publisher)."""
        if key is not None:
            sign_bundle(bundle, key)
        return self.store.publish(ROUTER, bundle)

    def truncated(self) -> int:
        b = self.bundle()
        sign_bundle(b, self.key)
        blob = (b / "router.onnx").read_bytes()
        (b / "router.onnx").write_bytes(blob[: len(blob) // 2])
        return self.raw(b)

    def tampered(self) -> int:
        b = self.bundle()
        sign_bundle(b, self.key)
        blob = bytearray((b / "router.onnx").read_bytes())
        blob[-1] ^= 0xFF
        (b / "router.onnx").write_bytes(bytes(blob))
        return self.raw(b)

    def wrongly_signed(self) -> int:
        return self.raw(self.bundle(), self.other_key)

    def oversized(self) -> int:
        return self.raw(self.bundle(extra_files={"padding.bin": b"\0" * (CAP * 2)}), self.key)

    def disallowed_op(self) -> int:
        return self.raw(self.bundle(extra_op="com.microsoft:FusedGemm"), self.key)


@pytest.fixture(params=["dir", "s3"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, dict]]:
    """(source, store, env for the service) for a directory registry and for MinIO."""
    if request.param == "dir":
        root = tmp_path / "registry"
        root.mkdir()
        yield str(root), DirStore(root), {}
        return
    minio = request.getfixturevalue("minio_server")
    bucket = minio.make_bucket(f"reg-{uuid.uuid4().hex[:12]}")
    source = f"s3://{bucket}/routers"
    store = S3Store(
        source,
        S3Settings(
            endpoint_url=minio.endpoint,
            access_key_id=minio.env["AWS_ACCESS_KEY_ID"],
            secret_access_key=minio.env["AWS_SECRET_ACCESS_KEY"],
            region="us-east-1",
        ),
        tmp_path / "publisher-cache",
    )
    yield source, store, minio.env


def serve(tmp: Path, source: str, pub_key: Path, env: dict[str, str]) -> ServiceProcess:
    config = tmp / "service.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "registry": {"source": source, "poll_s": 0.3, "debounce_ms": 50},
                "bundles": {"require_signature": True, "public_keys": [str(pub_key)]},
                "bundle_max_file_bytes": CAP,
                "telemetry": {"outcomes_path": str(tmp / "outcomes.jsonl")},
            }
        )
    )
    return ServiceProcess(["--config", str(config)], env=env).wait_ready()


async def serving_version(stub: pb_grpc.RouterStub) -> str:
    listed = await stub.ListRouters(pb.ListRoutersRequest(), timeout=5)
    return next(r.version for r in listed.routers if r.name == ROUTER)


async def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_publications_swap_refusals_keep_serving_under_load(
    registry: tuple[str, Any, dict], tmp_path: Path
) -> None:
    source, store, env = registry
    pub = Publisher(store, tmp_path)
    assert pub.good() == 1
    service = serve(tmp_path, source, Path(f"{pub.key}.pub"), env)
    try:
        async with grpc.aio.insecure_channel(service.target) as channel:
            stub = pb_grpc.RouterStub(channel)
            assert await serving_version(stub) == "1"
            async with RouteLoad(service.target, route_request, clients=8) as load:
                await asyncio.sleep(0.5)
                v2 = await asyncio.to_thread(pub.good)

                async def swapped() -> bool:
                    return await serving_version(stub) == str(v2)

                await wait_for(swapped, f"version {v2} to serve")

                reasons = {
                    "truncated": "does not match its sha256",
                    "tampered": "does not match its sha256",
                    "wrongly_signed": "not in bundles.public_keys",
                    "oversized": "over the cap",
                    "disallowed_op": "operators outside the allowed domains",
                }
                refused_versions = []
                for kind, reason in reasons.items():
                    bad = await asyncio.to_thread(getattr(pub, kind))
                    refused_versions.append(str(bad))
                    line = f"refused version {bad} as champion"

                    async def refused(line: str = line) -> bool:
                        return line in service.log()

                    await wait_for(refused, f"{kind} version {bad} to be refused")
                    logged = next(x for x in service.log().splitlines() if line in x)
                    assert reason in logged, logged
                    assert await serving_version(stub) == str(v2), kind

                calls_before_burst = load.stats.calls
                last = 0
                for _ in range(20):
                    last = await asyncio.to_thread(pub.good)

                async def newest() -> bool:
                    return await serving_version(stub) == str(last)

                await wait_for(newest, f"the newest version {last} to serve")
                await asyncio.sleep(0.5)
            stats = load.stats
            assert stats.failures == [], stats.failures[:5]
            assert stats.calls > calls_before_burst > 100
            assert stats.versions["1"] > 0 and stats.versions[str(v2)] > 0
            assert stats.versions[str(last)] > 0
            assert set(stats.sources) <= {"MODEL", "CACHE"}, stats.sources
            assert not set(refused_versions) & set(stats.versions), stats.versions
            health = await stub.ListRouters(pb.ListRoutersRequest(), timeout=5)
            info = next(r for r in health.routers if r.name == ROUTER)
            assert info.signed_by and info.origin.endswith(f"{ROUTER}/{last}")
    finally:
        service.stop()
