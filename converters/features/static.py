"""A static encoder distilled from the MiniLM weights: sentence embeddings at TF-IDF cost.

Built without torch, deterministically, in about a minute of one core:

1. every vocabulary token ``t`` goes once through the MiniLM encoder graph (as the input
   ``[CLS] t [SEP]``; the graph mean-pools and L2-normalises), giving one 384-d vector per token;
2. the vectors are centred and projected on their first ``dims`` principal components (PCA by
   SVD), which drops the direction every token shares;
3. each token weighs 1 (``weighting="uniform"``, the default) or, with ``weighting="sif"``, by
   its frequency in the training texts (smooth inverse frequency, ``a / (a + p(t))`` with
   ``a`` = :data:`SIF_A`; tokens never seen weigh 1); special tokens weigh 0. Uniform weights
   routed better on every public dataset here (frequent tokens such as numbers carry the
   difficulty of a GSM8K problem; docs/benchmarks.md).

At serving time the ONNX graph (:func:`build_static_onnx`) takes the same inputs as the MiniLM
encoder (``input_ids``, ``attention_mask``, from the same ``tokenizer.json``) and returns the
weighted mean of the tokens' vectors, L2-normalised, as ``embedding`` — a ``Gather``, a few
elementwise operations and two reductions: no attention, no layers. So the service runs it with
its MiniLM featurizer class, and a prompt costs its tokenization plus microseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

from converters.features.minilm import DIM, build_encoder_onnx, tokenizer_path
from converters.onnx_common import IR_VERSION, OPSET
from router_service.onnx_session import make_session

__all__ = [
    "DEFAULT_DIMS",
    "SIF_A",
    "build_static",
    "build_static_onnx",
    "distill",
    "parity_check",
    "reference",
    "token_weights",
]

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
DEFAULT_DIMS = 256
SIF_A = 1e-3
_BATCH = 1024
_SPECIAL = ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]")


def _special_ids(tokenizer: Tokenizer) -> list[int]:
    return [i for t in _SPECIAL if (i := tokenizer.token_to_id(t)) is not None]


def token_vectors(
    weights_dir: Path, encoder: Path, progress: Callable[[int], None] | None = None
) -> F32:
    """One MiniLM vector per vocabulary token: ``[vocab, DIM]`` (two intra-op threads)."""
    tokenizer = Tokenizer.from_file(str(tokenizer_path(weights_dir)))
    vocab = tokenizer.get_vocab_size()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    session = make_session(str(encoder), 2)
    out = np.empty((vocab, DIM), dtype=np.float32)
    for start in range(0, vocab, _BATCH):
        tokens = np.arange(start, min(start + _BATCH, vocab), dtype=np.int64)
        ids = np.stack([np.full_like(tokens, cls), tokens, np.full_like(tokens, sep)], axis=1)
        (emb,) = session.run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        out[tokens] = emb
        if progress is not None:
            progress(len(tokens))
    return out


def token_weights(tokenizer: Tokenizer, texts: Sequence[str], a: float = SIF_A) -> F32:
    """Smooth inverse frequency per token over ``texts``: ``a / (a + p(t))``; 1 for tokens
    never seen, 0 for special tokens."""
    counts = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        np.add.at(counts, np.asarray(enc.ids, dtype=np.int64), 1.0)
    p = counts / max(counts.sum(), 1.0)
    weights: F32 = (a / (a + p)).astype(np.float32)
    weights[_special_ids(tokenizer)] = 0.0
    return weights


def distill(vectors: F32, dims: int = DEFAULT_DIMS) -> F32:
    """Centre the token vectors and keep their first ``dims`` principal components."""
    centred = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dims]
    sign = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    return np.asarray(centred @ (components * sign[:, None]).T, dtype=np.float32)


def build_static_onnx(table: F32, weights: F32) -> onnx.ModelProto:
    """``embedding = normalize(Σ w[id]·mask·table[id] / Σ w[id]·mask)`` over the sequence."""
    dim = table.shape[1]
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["vectors"], axis=0),
        helper.make_node("Gather", ["weights", "input_ids"], ["token_w"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["token_w", "mask_f"], ["w"]),
        helper.make_node("Unsqueeze", ["w", "axis2"], ["w3"]),
        helper.make_node("Mul", ["vectors", "w3"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceL2", ["summed"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
        helper.make_node("Div", ["summed", "safe_norm"], ["embedding"]),
    ]
    inits = [
        numpy_helper.from_array(table.astype(np.float32), "table"),
        numpy_helper.from_array(weights.astype(np.float32), "weights"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps"),
    ]
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])
    graph = helper.make_graph(nodes, "static-encoder", [ids, mask], [out], initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="routeiq-converters"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def reference(table: F32, weights: F32, ids: Sequence[int]) -> F32:
    """The graph's output for one tokenized text, in numpy (the parity reference)."""
    idx = np.asarray(ids, dtype=np.int64)
    summed = (table[idx].astype(np.float64) * weights[idx, None]).sum(axis=0)
    return np.asarray(summed / max(float(np.linalg.norm(summed)), 1e-12), dtype=np.float32)


def parity_check(model: onnx.ModelProto, tokenizer: Tokenizer, texts: Sequence[str]) -> float:
    """Minimum cosine, over ``texts``, between the graph and :func:`reference`."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    session = make_session(model.SerializeToString())
    worst = 1.0
    for text in texts:
        ids = tokenizer.encode(text).ids
        feed = np.asarray([ids], dtype=np.int64)
        feeds = {"input_ids": feed, "attention_mask": np.ones_like(feed)}
        (got,) = session.run(["embedding"], feeds)
        want = reference(inits["table"], inits["weights"], ids)
        worst = min(worst, float(np.dot(got[0], want)))
    return worst


def build_static(
    weights_dir: Path,
    out_path: Path,
    *,
    dims: int = DEFAULT_DIMS,
    weighting: Literal["uniform", "sif"] = "uniform",
    texts: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> onnx.ModelProto:
    """Distil the encoder (see the module docstring; ``texts``: the corpus of ``sif``
    weights); the graph is written to ``out_path`` and returned."""
    encoder = build_encoder_onnx(weights_dir, out_path.with_name("minilm-encoder.onnx"))
    table = distill(token_vectors(weights_dir, encoder, progress), dims)
    encoder.unlink()
    tokenizer = Tokenizer.from_file(str(tokenizer_path(weights_dir)))
    weights = token_weights(tokenizer, texts if weighting == "sif" else ())
    if weighting == "uniform":
        weights = np.where(weights > 0, 1.0, 0.0).astype(np.float32)
    model = build_static_onnx(table, weights)
    onnx.save(model, str(out_path))
    log.info("static encoder: %d tokens x %d dims -> %s", *table.shape, out_path)
    return model
