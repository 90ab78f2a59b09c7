"""Featurizer artifacts for a bundle, and the features a router is trained on.

Training features are computed by the exported ONNX graph itself (through the service's own
featurizer classes), so a router learns exactly the features it will see when serving.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from converters.features import minilm, static
from converters.features.tfidf import TfidfConfig, fit_tfidf, tfidf_parity, tfidf_to_onnx
from router_service.bundles.manifest import FeaturizerSpec
from router_service.featurizers.minilm import MiniLMFeaturizer
from router_service.featurizers.onnx_text import OnnxTextFeaturizer

__all__ = ["FEATURIZER_KINDS", "BuiltFeaturizer", "build_featurizer", "encode_all"]

log = logging.getLogger(__name__)
FEATURIZER_KINDS = ("tfidf", "minilm", "minilm-int8", "static", "embedding")
Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]
Progress = Callable[[int], None]


@dataclass
class BuiltFeaturizer:
    """What a bundle needs from its featurizer: spec, files, an encoder, and parity figures."""

    spec: FeaturizerSpec
    files: dict[str, bytes]
    encode: Encode
    parity: dict[str, float] = field(default_factory=dict)
    batch: int = 64
    """Texts per featurizer call; 1 for int8 MiniLM, whose dynamic quantization makes a
    text's features depend on its batch-mates (the service featurizes one text at a time)."""


def _tfidf(
    train_texts: Sequence[str], holdout: Sequence[str], svd_dims: int | None
) -> BuiltFeaturizer:
    fitted = fit_tfidf(train_texts, TfidfConfig(svd_dims=svd_dims))
    model = tfidf_to_onnx(fitted)
    blob = model.SerializeToString()
    parity = tfidf_parity(fitted, model, holdout)
    runtime = OnnxTextFeaturizer("tfidf", blob, "build", fitted.n_features)
    spec = FeaturizerSpec(kind="tfidf", dim=fitted.n_features, file="featurizer.onnx")
    return BuiltFeaturizer(spec, {"featurizer.onnx": blob}, runtime.featurize, parity)


def _minilm(
    holdout: Sequence[str], int8: bool, client_side: bool, max_length: int
) -> BuiltFeaturizer:
    weights = minilm.find_weights_dir()
    tok = minilm.tokenizer_path(weights)
    with tempfile.TemporaryDirectory(prefix="routeiq-minilm-") as tmp:  # ~90 MB of graphs
        fp32 = minilm.build_encoder_onnx(weights, Path(tmp) / "encoder.onnx")
        parity = {"min_cosine_vs_numpy": minilm.parity_check(weights, fp32, list(holdout)[:32])}
        path = minilm.quantize_int8(fp32, Path(tmp) / "encoder-int8.onnx") if int8 else fp32
        runtime = MiniLMFeaturizer(path, tok, max_length=max_length, quantized=int8)
        graph = path.read_bytes()
    if client_side:
        spec = FeaturizerSpec(kind="embedding", dim=runtime.dim)
        return BuiltFeaturizer(spec, {}, runtime.featurize, parity)
    return _tokenized("minilm", runtime, graph, tok, parity, quantized=int8)


def _tokenized(
    kind: Literal["minilm", "static"],
    runtime: MiniLMFeaturizer,
    graph: bytes,
    tokenizer: Path,
    parity: dict[str, float],
    *,
    quantized: bool = False,
) -> BuiltFeaturizer:
    """A featurizer shipped as ``featurizer.onnx`` + ``tokenizer.json`` (MiniLM, static)."""
    spec = FeaturizerSpec(
        kind=kind,
        dim=runtime.dim,
        file="featurizer.onnx",
        tokenizer="tokenizer.json",
        max_length=runtime.max_length,
        quantized=quantized,
    )
    files = {"featurizer.onnx": graph, "tokenizer.json": tokenizer.read_bytes()}
    return BuiltFeaturizer(spec, files, runtime.featurize, parity, batch=1 if quantized else 64)


def _static(holdout: Sequence[str], max_length: int) -> BuiltFeaturizer:
    weights = minilm.find_weights_dir()
    tok = minilm.tokenizer_path(weights)
    with tempfile.TemporaryDirectory(prefix="routeiq-static-") as tmp:
        path = Path(tmp) / "static.onnx"
        model = static.build_static(weights, path)
        parity = {
            "min_cosine_vs_numpy": static.parity_check(
                model, Tokenizer.from_file(str(tok)), list(holdout)[:32]
            )
        }
        runtime = MiniLMFeaturizer(path, tok, max_length=max_length, name="static")
        graph = path.read_bytes()
    return _tokenized("static", runtime, graph, tok, parity)


def build_featurizer(
    kind: str,
    train_texts: Sequence[str],
    holdout: Sequence[str],
    *,
    svd_dims: int | None = 256,
    max_length: int = 256,
) -> BuiltFeaturizer:
    """Fit/export the featurizer ``kind`` (see :data:`FEATURIZER_KINDS`).

    ``embedding`` trains on MiniLM fp32 vectors but ships no featurizer: clients send
    all-MiniLM-L6-v2 embeddings themselves.
    """
    if kind == "tfidf":
        built = _tfidf(train_texts, holdout, svd_dims)
    elif kind in ("minilm", "minilm-int8", "embedding"):
        built = _minilm(holdout, kind == "minilm-int8", kind == "embedding", max_length)
    elif kind == "static":
        built = _static(holdout, max_length)
    else:
        raise ValueError(f"unknown featurizer {kind!r}; expected one of {FEATURIZER_KINDS}")
    if built.spec.kind == "embedding" or not holdout:
        return built  # the client sends the vectors: nothing to time
    cost = featurize_cost_ms(built, holdout)
    return replace(built, spec=built.spec.model_copy(update={"cost_ms_p99": cost}))


def featurize_cost_ms(built: BuiltFeaturizer, texts: Sequence[str], n: int = 32) -> float:
    """p99 milliseconds to featurize one of ``texts`` (up to ``n`` of them, one at a time, after
    one warm-up call), as the service featurizes a lone request."""
    sample = list(texts[:n])
    built.encode(sample[:1])
    times = []
    for text in sample:
        start = time.perf_counter()
        built.encode([text])
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.percentile(times, 99)), 3)


def encode_all(
    built: BuiltFeaturizer, texts: Sequence[str], progress: Progress | None = None
) -> npt.NDArray[np.float32]:
    """Features for ``texts`` in batches of ``built.batch`` (one row per text, float32)."""
    rows = []
    for start in range(0, len(texts), built.batch):
        chunk = list(texts[start : start + built.batch])
        rows.append(built.encode(chunk))
        if progress is not None:
            progress(len(chunk))
    if not rows:
        raise ValueError("no texts to featurize")
    return np.concatenate(rows).astype(np.float32)
