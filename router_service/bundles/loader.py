"""Loading verified bundles into routers the engine can serve."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from router_service.bundles.base import BundleInfo, LoadedRouter
from router_service.bundles.manifest import Manifest
from router_service.bundles.signing import TrustedKeys
from router_service.bundles.verify import VerifiedBundle, verify_bundle
from router_service.errors import BundleError
from router_service.featurizers.base import Featurizer
from router_service.featurizers.minilm import MiniLMFeaturizer
from router_service.featurizers.onnx_text import ClientEmbedding, OnnxTextFeaturizer
from router_service.onnx_session import make_session
from router_service.strategies.learned import OnnxPredictor, OnnxQualityRouter, PricePrior
from router_service.strategies.tier import PriceLadderRouter

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
        name=spec.kind,
    )


def _strategy(bundle: VerifiedBundle, aliases: Mapping[str, str]) -> OnnxPredictor:
    m: Manifest = bundle.manifest
    session = make_session(bundle.blobs[m.router.file])
    per_mtok = m.cost_unit == "usd_per_mtok"
    if m.ladder is not None:
        return PriceLadderRouter(
            m.router_kind,
            session=session,
            input_name=m.router.input,
            output_name=m.router.output,
            ladder=m.ladder,
            model_prices=m.model_costs if per_mtok else {},
            default_cost_weight=m.default_cost_weight,
        )
    return OnnxQualityRouter(
        m.router_kind,
        session=session,
        input_name=m.router.input,
        output_name=m.router.output,
        models=m.models,
        model_costs=m.model_costs,
        prices_apply=per_mtok,
        default_cost_weight=m.default_cost_weight,
        aliases=aliases,
        prior=None
        if m.price_prior is None
        else PricePrior.of(m.price_prior.prices, m.price_prior.quality, m.price_prior.mean_quality),
    )


def _outputs(m: Manifest) -> int:
    """Width of the router's prediction row."""
    return len(m.ladder) if m.ladder is not None else len(m.models)


def _warm(router: OnnxPredictor, featurizer: Featurizer, m: Manifest) -> None:
    """Run the whole path once: loads lazily-built kernels and proves the shapes agree."""
    if isinstance(featurizer, ClientEmbedding):
        features = np.zeros((1, m.featurizer.dim), dtype=np.float32)
    else:
        features = featurizer.featurize([WARMUP_TEXT])
    if features.shape != (1, m.featurizer.dim):
        raise BundleError(f"featurizer gave {features.shape}, manifest says dim {m.featurizer.dim}")
    quality = router.predict(features)
    if quality.shape != (_outputs(m),):
        raise BundleError(f"router gave {quality.shape} outputs, manifest says {_outputs(m)}")


def _check_aliases(m: Manifest, aliases: Mapping[str, str]) -> None:
    if aliases and m.ladder is not None:
        raise BundleError(
            f"aliases for {m.name!r}: a tier router routes any priced model, it needs none"
        )
    wrong = sorted(f"{a} -> {t}" for a, t in aliases.items() if t not in m.models)
    if wrong:
        raise BundleError(
            f"aliases for {m.name!r} name models it was not trained on: {', '.join(wrong)}; "
            f"its models: {', '.join(m.models)}"
        )
    shadowing = sorted(a for a in aliases if a in m.models)
    if shadowing:
        raise BundleError(f"aliases for {m.name!r} rename its own models: {', '.join(shadowing)}")


def _info(bundle: VerifiedBundle, origin: str) -> BundleInfo:
    m = bundle.manifest
    held_out = m.provenance.get("metrics", {}).get("router", {})
    quality, cost = held_out.get("avg_quality"), held_out.get("avg_cost")
    return BundleInfo(
        origin=origin,
        bundle_version=m.version,
        signed_by=bundle.signed_by,
        trained_at=str(m.provenance.get("trained_at", "")),
        held_out_quality=float(quality) if isinstance(quality, int | float) else None,
        held_out_cost=float(cost) if isinstance(cost, int | float) else None,
    )


def load_bundle(
    path: Path,
    max_file_bytes: int,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
    trusted: TrustedKeys | None = None,
    *,
    version: str | None = None,
    origin: str | None = None,
    graphs_checked: str | None = None,
) -> LoadedRouter:
    """Verify, build and warm one bundle; :class:`BundleError` when anything is wrong.
    ``aliases``: per router name, candidate names that stand for one of its models;
    ``trusted``: the signature policy; ``version``: what answers report (default: the
    manifest's); ``origin``: where it came from (default: the path); ``graphs_checked``: see
    :func:`verify_bundle`."""
    bundle = verify_bundle(path, max_file_bytes, trusted, graphs_checked=graphs_checked)
    m = bundle.manifest
    mine = dict((aliases or {}).get(m.name, {}))
    _check_aliases(m, mine)
    try:
        featurizer = _featurizer(bundle)
        strategy = _strategy(bundle, mine)
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
        version=version or m.version,
        strategy=strategy,
        featurizer=featurizer,
        models=() if m.ladder is not None else tuple(m.models),
        outputs=_outputs(m),
        aliases=mine,
        sha256=bundle.sha256,
        featurizer_cost_ms=m.featurizer.cost_ms_p99,
        info=_info(bundle, origin or str(path)),
    )


class BundleDirSource:
    """Routers from bundle directories, one router per bundle (named by its manifest)."""

    def __init__(
        self,
        paths: Sequence[Path],
        max_file_bytes: int,
        aliases: Mapping[str, Mapping[str, str]] | None = None,
        trusted: TrustedKeys | None = None,
    ) -> None:
        self._paths = list(paths)
        self._max = max_file_bytes
        self._aliases = aliases or {}
        self._trusted = trusted

    def load(self) -> list[LoadedRouter]:
        return [load_bundle(p, self._max, self._aliases, self._trusted) for p in self._paths]
