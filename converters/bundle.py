"""Writing router bundles: the files, their hashes, and ``manifest.json``.

The bundle is assembled in a temporary directory beside ``out`` and renamed into place, so a
reader (the service's hot reload) never sees half a bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from router_service.bundles.manifest import FeaturizerSpec, FileEntry, Manifest, PricePriorSpec

__all__ = ["new_version", "write_bundle"]


def new_version(after: str = "") -> str:
    """A sortable version string: UTC time of creation, made to sort after ``after`` (the
    version it replaces) even when both are made within the same second."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return stamp if stamp > after else f"{after}.1"


def write_bundle(
    out: Path,
    *,
    name: str,
    router_kind: str,
    models: list[str],
    model_costs: Mapping[str, float],
    featurizer: FeaturizerSpec,
    files: Mapping[str, bytes],
    cost_unit: str = "usd_per_mtok",
    version: str | None = None,
    default_cost_weight: float = 0.0,
    calibration: list[dict[str, float]] | None = None,
    provenance: dict[str, Any] | None = None,
    ladder: Sequence[float] | None = None,
    price_prior: PricePriorSpec | None = None,
) -> Manifest:
    """Write ``files`` (name → bytes) and the manifest describing them into directory ``out``.

    ``ladder``: the router predicts quality per rung of a price ladder (kind ``tier``), not
    per model; ``price_prior``: a per-model router's prior for models it was not trained on.
    ``out`` is replaced if it exists. Returns the manifest written.
    """
    entries = {
        fname: FileEntry(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
        for fname, blob in files.items()
    }
    manifest = Manifest.model_validate(
        {
            "name": name,
            "version": version or new_version(),
            "router_kind": router_kind,
            "models": models,
            "model_costs": dict(model_costs),
            "cost_unit": cost_unit,
            "featurizer": featurizer.model_dump(),
            "default_cost_weight": default_cost_weight,
            "calibration": calibration or [],
            "provenance": provenance or {},
            "files": {k: v.model_dump() for k, v in entries.items()},
        }
        | ({} if ladder is None else {"outputs": "ladder_quality", "ladder": list(ladder)})
        | ({} if price_prior is None else {"price_prior": price_prior.model_dump()})
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for fname, blob in files.items():
            (tmp / fname).write_bytes(blob)
        text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True)
        (tmp / "manifest.json").write_text(text + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
