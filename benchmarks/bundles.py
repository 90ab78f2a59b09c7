"""Router bundles the scenarios serve, built once and cached in ``benchmarks/.cache/bundles``.

Full runs train kNN bundles on the LLMRouter data (``routeiq-bundle train``; MiniLM ones take a
minute or two to featurize ~6k prompts). Smoke runs use a tiny linear TF-IDF bundle trained on
the project's generated dataset (:mod:`converters.synthetic`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.procs import REPO

__all__ = ["CACHE", "ensure_bundle", "ensure_synthetic"]

CACHE = REPO / "benchmarks" / ".cache"


def _bundle_cli() -> str:
    local = Path(sys.executable).with_name("routeiq-bundle")
    return str(local) if local.exists() else (shutil.which("routeiq-bundle") or "routeiq-bundle")


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
    print(f"  built {out.name} in {time.monotonic() - start:.0f} s", flush=True)
    return out


def ensure_bundle(data: Path, fmt: str, featurizer: str, router: str = "knn") -> Path:
    """``CACHE/bundles/<router>-<featurizer>``, trained on ``data`` unless already there."""
    out = CACHE / "bundles" / f"{router}-{featurizer}"
    if (out / "manifest.json").is_file():
        return out
    args = ["--data", str(data), "--format", fmt, "--router", router, "--featurizer", featurizer]
    return _train(args, out)


def ensure_synthetic(folder: Path | None = None) -> tuple[Path, Path]:
    """(dataset CSV, bundle): the generated dataset and a linear TF-IDF (SVD 64) bundle on it."""
    from converters.synthetic import write_synthetic

    root = folder or CACHE / "smoke"
    csv = root / "synthetic.csv"
    bundle = root / "linear-tfidf"
    if not csv.is_file():
        write_synthetic(csv)
    if not (bundle / "manifest.json").is_file():
        args = ["--data", str(csv), "--format", "wide", "--router", "linear"]
        _train([*args, "--featurizer", "tfidf", "--svd-dims", "64"], bundle)
    return csv, bundle
