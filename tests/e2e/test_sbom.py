"""`make sbom`: a CycloneDX SBOM of the installed environment, with the locked versions."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sbom_lists_the_locked_packages() -> None:
    subprocess.run(["make", "sbom"], cwd=REPO, check=True, capture_output=True, timeout=600)
    sbom = json.loads((REPO / "var" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    versions = {c["name"].lower(): c.get("version") for c in sbom["components"]}
    locked = dict(
        re.findall(r"^([a-z0-9_.-]+)==([^\s]+)", (REPO / "requirements/lock.txt").read_text(), re.M)
    )
    for name in ("grpcio", "onnxruntime", "protobuf", "cryptography", "redis"):
        assert versions[name] == locked[name], name
    assert "routeiq-router" in versions
