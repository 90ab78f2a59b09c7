"""Loading verified bundles into routers the engine can serve."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router_service.bundles.base import LoadedRouter
from router_service.bundles.manifest import Manifest
from router_service.bundles.verify import VerifiedBundle, verify_bundle
from router_service.errors import BundleError
from router_service.featurizers.base import Featurizer
from router_service.featurizers.minilm import MiniLMFeaturizer
from router_service.featurizers.onnx_text import ClientEmbedding, OnnxTextFeaturizer
from router_service.onnx_session import make_session
from router_service.strategies.learned import OnnxQualityRouter

__all__ = ["BundleDirSource", "load_bundle"]

log = logging.getLogger(__name__)
WARMUP_TEXT = "How many prime numbers are there below one hundred?"


def _featurizer(bundle: VerifiedBundle) -> Featurizer:
    spec = bundle.manifest.featurizer
    if spec.kind == "embedding":
        return ClientEmbedding(spec.dim)
    assert spec.file is not None
    sha = bundle.manifest.files[spec.file].sha256
    if spec.kind == "tfidf":
        return OnnxTextFeaturizer("tfidf", bundle.blobs[spec.file], sha, spec.dim)
    assert spec.tokenizer is not None
    return MiniLMFeaturizer(
        bundle.path / spec.file,
        bundle.path / spec.tokenizer,
        max_length=spec.max_length,
        sha256=sha,
        quantized=spec.quantized,
    )


def _strategy(bundle: VerifiedBundle) -> OnnxQualityRouter:
    m: Manifest = bundle.manifest
    session = make_session(bundle.blobs[m.router.file])
    return OnnxQualityRouter(
        m.router_kind,
        session=session,
        input_name=m.router.input,
        output_name=m.router.output,
        models=m.models,
        model_costs=m.model_costs,
        prices_apply=m.cost_unit == "usd_per_mtok",
        default_cost_weight=m.default_cost_weight,
    )


def _warm(router: OnnxQualityRouter, featurizer: Featurizer, m: Manifest) -> None:
    """Run the whole path once: loads lazily-built kernels and proves the shapes agree."""
    if isinstance(featurizer, ClientEmbedding):
        features = np.zeros((1, m.featurizer.dim), dtype=np.float32)
    else:
        features = featurizer.featurize([WARMUP_TEXT])
    if features.shape != (1, m.featurizer.dim):
        raise BundleError(f"featurizer gave {features.shape}, manifest says dim {m.featurizer.dim}")
    quality = router.predict(features)
    if quality.shape != (len(m.models),):
        raise BundleError(f"router gave {quality.shape} outputs for {len(m.models)} models")


def load_bundle(path: Path, max_file_bytes: int) -> LoadedRouter:
    """Verify, build and warm one bundle; :class:`BundleError` when anything is wrong."""
    bundle = verify_bundle(path, max_file_bytes)
    m = bundle.manifest
    try:
        featurizer = _featurizer(bundle)
        strategy = _strategy(bundle)
        _warm(strategy, featurizer, m)
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None
    log.info(
        "loaded bundle %s@%s (%s, %s featurizer, %d models)",
        m.name,
        m.version,
        m.router_kind,
        m.featurizer.kind,
        len(m.models),
    )
    return LoadedRouter(
        name=m.name,
        kind=m.router_kind,
        version=m.version,
        strategy=strategy,
        featurizer=featurizer,
        models=tuple(m.models),
        sha256=bundle.sha256,
        featurizer_cost_ms=m.featurizer.cost_ms_p99,
    )


class BundleDirSource:
    """Routers from bundle directories, one router per bundle (named by its manifest)."""

    def __init__(self, paths: Sequence[Path], max_file_bytes: int) -> None:
        self._paths = list(paths)
        self._max = max_file_bytes

    def load(self) -> list[LoadedRouter]:
        return [load_bundle(p, self._max) for p in self._paths]
