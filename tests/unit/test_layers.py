"""Imports point down only (see the design's layers): the domain types and errors import
nothing of ours, the registry (``bundles``) never imports the engine or the wire format, the
engine never imports the registry's sources, and the cache is a leaf that stores arrays through
codecs it is given — it never imports the wire format, the surfaces, the settings or the
engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ours start with ``router_service``)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(package: str) -> list[Path]:
    base = ROOT / package.replace(".", "/")
    return sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]


CONTRACTS = [
    (
        "router_service.cache",
        (
            "router_service._proto",
            "router_service.proto",
            "router_service.surfaces",
            "router_service.config",
            "router_service.engine",
        ),
    ),
    (  # the registry owns the table; it never reaches up into the pipeline or the wire
        "router_service.bundles",
        (
            "router_service._proto",
            "router_service.proto",
            "router_service.surfaces",
            "router_service.engine",
            "router_service.server",
        ),
    ),
    (  # the engine runs whatever table it is handed: it knows no source, store or rollout file
        "router_service.engine",
        (
            "router_service.bundles.registry",
            "router_service.bundles.store",
            "router_service.bundles.loader",
            "router_service.server",
        ),
    ),
    ("router_service.domain", ("router_service",)),
    ("router_service.errors", ("router_service",)),
]


@pytest.mark.parametrize(("package", "forbidden"), CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_layer_imports_nothing_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules(package)
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    }
    assert not bad, sorted(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from router_service.config import Settings\nimport router_service.engine\n")
    assert {"router_service.config", "router_service.engine"} <= _imports(module)
