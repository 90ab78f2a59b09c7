"""Router bundles the scenarios serve, built once and cached in ``benchmarks/.cache/bundles``.

A cached bundle is rebuilt when the converter sources changed since it was built. Full runs
train kNN and linear bundles on the LLMRouter data (``routeiq-bundle train``; MiniLM ones take a
minute or two to featurize ~6k prompts). Smoke runs use a tiny linear TF-IDF bundle trained on
the project's generated dataset (:mod:`converters.datasets.synthetic`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procs import REPO

__all__ = ["CACHE", "KEYS", "ensure_bundle", "ensure_keyed", "ensure_synthetic"]

CACHE = REPO / "benchmarks" / ".cache"
KEYS = {  # a scenario's bundle key -> (router kind, featurizer)
    "tfidf": ("knn", "tfidf"),
    "static": ("knn", "static"),
    "minilm": ("knn", "minilm"),
    "minilm-int8": ("knn", "minilm-int8"),
    "linear-tfidf": ("linear", "tfidf"),
    "linear-minilm-int8": ("linear", "minilm-int8"),
}


def _bundle_cli() -> str:
    local = Path(sys.executable).with_name("routeiq-bundle")
    return str(local) if local.exists() else (shutil.which("routeiq-bundle") or "routeiq-bundle")


def _converter_stamp() -> str:
    """Hash of the converter sources: a bundle cached by an older converter is rebuilt."""
    digest = hashlib.sha256()
    root = REPO / "converters"
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cached(out: Path) -> bool:
    stamp = out.with_name(out.name + ".stamp")
    return (
        (out / "manifest.json").is_file()
        and stamp.is_file()
        and (stamp.read_text().strip() == _converter_stamp())
    )


def _train(args: list[str], out: Path) -> Path:
    log = out.with_name(out.name + ".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"  building bundle {out.name} (log: {log})", flush=True)
    start = time.monotonic()
    with log.open("wb") as fh:
        done = subprocess.run(
            [_bundle_cli(), "train", *args, "--out", str(out)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            check=False,
        )
    if done.returncode != 0 or not (out / "manifest.json").is_file():
        raise RuntimeError(f"bundle {out.name} failed ({done.returncode}); see {log}")
    out.with_name(out.name + ".stamp").write_text(_converter_stamp() + "\n")
    print(f"  built {out.name} in {time.monotonic() - start:.0f} s", flush=True)
    return out


def ensure_bundle(data: Path, fmt: str, featurizer: str, router: str = "knn") -> Path:
    """``CACHE/bundles/<router>-<featurizer>``, trained on ``data`` unless already there."""
    out = CACHE / "bundles" / f"{router}-{featurizer}"
    if _cached(out):
        return out
    args = ["--data", str(data), "--format", fmt, "--router", router, "--featurizer", featurizer]
    return _train(args, out)


def ensure_keyed(key: str, data: Path, fmt: str) -> Path:
    """The bundle a scenario names by ``key`` (see :data:`KEYS`)."""
    router, featurizer = KEYS[key]
    return ensure_bundle(data, fmt, featurizer, router)


def ensure_synthetic(folder: Path | None = None) -> tuple[Path, Path]:
    """(dataset CSV, bundle): the generated dataset and a linear TF-IDF (SVD 64) bundle on it."""
    from converters.datasets.synthetic import write_synthetic

    root = folder or CACHE / "smoke"
    csv = root / "synthetic.csv"
    bundle = root / "linear-tfidf"
    if not csv.is_file():
        write_synthetic(csv)
    if not _cached(bundle):
        args = ["--data", str(csv), "--format", "wide", "--router", "linear"]
        _train([*args, "--featurizer", "tfidf", "--svd-dims", "64"], bundle)
    return csv, bundle
