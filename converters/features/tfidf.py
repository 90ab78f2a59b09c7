"""TF-IDF query featurizer: fit with scikit-learn, export to ONNX with skl2onnx, check parity.

Pipeline (fit on the training queries only)::

    TfidfVectorizer(word 1..ngram_max grams, sublinear tf, l2 norm, max_features)
      -> optional TruncatedSVD(k)  -> optional l2 Normalizer

ONNX contract (:func:`tfidf_to_onnx`): input ``text`` string ``[None, 1]`` (or ``[None]`` with
``input_rank=1``), output ``features`` float32 ``[None, d]``; converted with target opset
:data:`OPSET` / ``ai.onnx.ml`` :data:`ML_OPSET` (skl2onnx records the lowest opsets the nodes
need: ``ai.onnx`` 16, ``ai.onnx.ml`` 1, ``com.microsoft`` 1), IR version :data:`IR_VERSION`.
The graph uses exactly the ``(domain, op_type)`` pairs in :data:`TFIDF_OP_TYPES` (``""`` is the
default ``ai.onnx`` domain; :data:`TFIDF_DENSE_OP_TYPES` for skl2onnx's dense graph); the
``com.microsoft`` ``Tokenizer`` is an onnxruntime contrib op.

Sparse projection (the default with an SVD and l2 output, :func:`_sparse_projection`):
skl2onnx's graph multiplies the dense ``[n, V]`` TF-IDF row by the ``[V, k]`` SVD matrix, which
reads all of it (20 MB for V = 20k, k = 256: ~2 ms per row, nearly all of the featurizer's
time). We keep skl2onnx's front (StringNormalizer → Tokenizer → TfIdfVectorizer term counts)
and replace the rest by ``NonZero`` → the row's few non-zero counts → ``1 + ln tf`` → ``Gather``
of the matching rows of ``P = diag(idf) · svdᵀ`` → weighted sum (``ScatterND`` add, per batch
row) → l2 ``Normalizer``. The TF-IDF vector's own l2 normalisation is a positive factor per row
that the final normalisation cancels, so it is dropped; the result equals scikit-learn's to
float32 rounding (~0.1 ms per row instead of ~2.2 ms).

Tokenizer agreement. scikit-learn tokenizes with Python ``re`` and ``(?u)\\b\\w\\w+\\b`` (runs of
two or more Unicode word characters); onnxruntime's Tokenizer uses RE2, whose ``\\w`` is ASCII
only, and skl2onnx would silently replace the default pattern by ``[a-zA-Z0-9_]+`` (which drops
non-ASCII letters and keeps one-character tokens, so unigrams and bigrams differ). We pass the
RE2 pattern :data:`ONNX_WORD_REGEX` = ``[\\pL\\pN_][\\pL\\pN_]+``: Python's ``\\w`` is exactly
letters (L*), numbers (N*) and ``_``, so both sides produce the same tokens, including for
accented, Cyrillic, Greek and CJK text. Lowercasing is Python ``str.lower`` vs the
``StringNormalizer`` op with locale ``C.UTF-8`` (needed on these machines); they differ only for
context-dependent or expanding mappings (Greek final sigma ``Σ`` → ``ς``, Turkish ``İ`` → ``i̇``).

skl2onnx 1.20 bug worked around here: for ``sublinear_tf=True`` it emits ``log(tf + 1)`` while
scikit-learn computes ``1 + log(tf)`` (for tf > 0); :func:`_patch_sublinear_tf` rewrites that
node pair into ``Min(tf, 1) * (1 + Log(Max(tf, 1)))``, which equals scikit-learn's value.

Vocabulary closure: skl2onnx needs every word of a kept bigram in the vocabulary, which
``max_features`` does not guarantee; the missing unigrams are added back (so the vocabulary may
exceed ``max_features`` by a few terms) and the idf refit on the same texts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import (
    FloatTensorType,
    StringTensorType,
)
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer

from converters.onnx_common import IR_VERSION, ML_OPSET, OPSET, ort_session

__all__ = [
    "LOCALE",
    "ONNX_WORD_REGEX",
    "SKLEARN_WORD_PATTERN",
    "SPARSE_MIN_OPSET",
    "TFIDF_DENSE_OP_TYPES",
    "TFIDF_OP_TYPES",
    "TfidfConfig",
    "TfidfFeaturizer",
    "fit_tfidf",
    "run_tfidf_onnx",
    "tfidf_parity",
    "tfidf_to_onnx",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

SKLEARN_WORD_PATTERN = r"(?u)\b\w\w+\b"
ONNX_WORD_REGEX = r"[\pL\pN_][\pL\pN_]+"
LOCALE = "C.UTF-8"
#: ``ScatterND`` with ``reduction="add"`` (the sparse projection) needs ``ai.onnx`` 16.
SPARSE_MIN_OPSET = 16

#: ``(domain, op_type)`` pairs of the default graph (sublinear tf, SVD, l2 output: the sparse
#: projection). ``sublinear_tf=False`` drops Log and Add.
TFIDF_OP_TYPES: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Reshape"),
        ("", "StringNormalizer"),
        ("com.microsoft", "Tokenizer"),
        ("", "Flatten"),
        ("", "TfIdfVectorizer"),
        ("", "NonZero"),
        ("", "Transpose"),
        ("", "GatherND"),
        ("", "Log"),
        ("", "Add"),
        ("", "Gather"),
        ("", "Unsqueeze"),
        ("", "Mul"),
        ("", "Shape"),
        ("", "Concat"),
        ("", "ConstantOfShape"),
        ("", "ScatterND"),
        ("ai.onnx.ml", "Normalizer"),
    }
)

#: ``(domain, op_type)`` pairs of skl2onnx's dense graph (``sparse=False``, or no SVD, or no
#: l2 output). No SVD drops MatMul; ``sublinear_tf=False`` drops Min, Max, Log and Add.
TFIDF_DENSE_OP_TYPES: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Reshape"),
        ("", "StringNormalizer"),
        ("com.microsoft", "Tokenizer"),
        ("", "Flatten"),
        ("", "TfIdfVectorizer"),
        ("", "Min"),
        ("", "Max"),
        ("", "Log"),
        ("", "Add"),
        ("", "Mul"),
        ("ai.onnx.ml", "Normalizer"),
        ("", "MatMul"),
        ("", "Cast"),
    }
)


@dataclass(frozen=True)
class TfidfConfig:
    """Featurizer settings.

    ``max_features``: vocabulary cap (most frequent terms); ``min_df``: minimum document
    frequency of a term; ``ngram_max``: longest word n-gram (1 or 2); ``svd_dims``: TruncatedSVD
    output size, ``None`` for the raw sparse TF-IDF (densified; d = vocabulary size);
    ``normalize``: l2-normalise the final vectors; ``seed``: SVD random state.
    """

    max_features: int = 20_000
    min_df: int = 2
    ngram_max: int = 2
    sublinear_tf: bool = True
    svd_dims: int | None = 256
    normalize: bool = True
    seed: int = 0


@dataclass(frozen=True, eq=False)
class TfidfFeaturizer:
    """A fitted TF-IDF pipeline; ``n_features`` is the output width ``d``."""

    config: TfidfConfig
    pipeline: Any
    n_features: int
    vocabulary_size: int
    fit_seconds: float

    def transform(self, texts: Sequence[str]) -> FloatArray:
        """Features float32 ``[len(texts), d]`` computed by scikit-learn (float64 inside)."""
        out = self.pipeline.transform(list(texts))
        dense = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
        return np.ascontiguousarray(dense, dtype=np.float32)


def _vectorizer(config: TfidfConfig, vocabulary: list[str] | None = None) -> Any:
    return TfidfVectorizer(
        lowercase=True,
        token_pattern=SKLEARN_WORD_PATTERN,
        ngram_range=(1, config.ngram_max),
        sublinear_tf=config.sublinear_tf,
        min_df=1 if vocabulary is not None else config.min_df,
        max_features=None if vocabulary is not None else config.max_features,
        vocabulary=vocabulary,
        norm="l2",
    )


def _fit_vectorizer(texts: list[str], config: TfidfConfig) -> Any:
    """Fit, then close the vocabulary under "words of kept n-grams" (see module doc)."""
    vec = _vectorizer(config).fit(texts)
    vocab = set(vec.vocabulary_)
    missing = {w for term in vocab if " " in term for w in term.split(" ")} - vocab
    if not missing:
        return vec
    logger.info("adding %d unigrams of kept bigrams to the vocabulary", len(missing))
    return _vectorizer(config, sorted(vocab | missing)).fit(texts)


def fit_tfidf(texts: Sequence[str], config: TfidfConfig | None = None) -> TfidfFeaturizer:
    """Fit the featurizer on ``texts`` (training queries only)."""
    cfg = config or TfidfConfig()
    if cfg.ngram_max not in (1, 2):
        raise ValueError(f"ngram_max must be 1 or 2, got {cfg.ngram_max}")
    start = time.perf_counter()
    docs = list(texts)
    steps: list[tuple[str, Any]] = [("tfidf", _fit_vectorizer(docs, cfg))]
    n_vocab = len(steps[0][1].vocabulary_)
    if cfg.svd_dims is not None:
        k = min(cfg.svd_dims, n_vocab - 1, len(docs) - 1)
        if k < 1:
            raise ValueError(f"too little data for an SVD: {len(docs)} texts, {n_vocab} terms")
        svd = TruncatedSVD(n_components=k, random_state=cfg.seed)
        steps.append(("svd", svd.fit(steps[0][1].transform(docs))))
    if cfg.normalize:
        steps.append(("norm", Normalizer(norm="l2")))
    pipeline = Pipeline(steps)
    d = steps[1][1].n_components if cfg.svd_dims is not None else n_vocab
    seconds = time.perf_counter() - start
    logger.info("tfidf fit: %d texts, vocabulary %d, d=%d, %.1fs", len(docs), n_vocab, d, seconds)
    return TfidfFeaturizer(cfg, pipeline, int(d), n_vocab, seconds)


def _producer(graph: onnx.GraphProto, name: str) -> onnx.NodeProto | None:
    return next((n for n in graph.node if name in n.output), None)


def _all_ones(graph: onnx.GraphProto, name: str) -> bool:
    init = next((t for t in graph.initializer if t.name == name), None)
    return init is not None and bool(np.all(numpy_helper.to_array(init) == 1.0))


def _patch_sublinear_tf(model: onnx.ModelProto) -> None:
    """Replace skl2onnx's ``Log(tf + 1)`` by scikit-learn's ``tf > 0 ? 1 + log(tf) : 0``."""
    graph = model.graph
    matches = []
    for log in (n for n in graph.node if n.op_type == "Log"):
        add = _producer(graph, log.input[0])
        if add is None or add.op_type != "Add" or not _all_ones(graph, add.input[1]):
            continue
        source = _producer(graph, add.input[0])
        if source is not None and source.op_type == "TfIdfVectorizer":
            matches.append((add, log))
    if len(matches) != 1:
        raise RuntimeError(f"expected one sublinear-tf Add/Log pair, found {len(matches)}")
    add, log = matches[0]
    tf, out = add.input[0], log.output[0]
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "sublinear_one"))
    new_nodes = [
        helper.make_node("Min", [tf, "sublinear_one"], ["sublinear_present"]),
        helper.make_node("Max", [tf, "sublinear_one"], ["sublinear_safe"]),
        helper.make_node("Log", ["sublinear_safe"], ["sublinear_log"]),
        helper.make_node("Add", ["sublinear_log", "sublinear_one"], ["sublinear_1plog"]),
        helper.make_node("Mul", ["sublinear_present", "sublinear_1plog"], [out]),
    ]
    position = list(graph.node).index(add)
    graph.node.remove(add)
    graph.node.remove(log)
    if not any(add.input[1] in n.input for n in graph.node):
        unused = next(t for t in graph.initializer if t.name == add.input[1])
        graph.initializer.remove(unused)
    for offset, node in enumerate(new_nodes):
        graph.node.insert(position + offset, node)


def _sparse_projection(featurizer: TfidfFeaturizer, model: onnx.ModelProto) -> None:
    """Replace everything after ``TfIdfVectorizer`` by a sparse projection (see module doc).

    ``features = l2(Σ_j w(tf_j) · P[j])`` over the non-zero term counts ``tf_j`` of a row,
    with ``w(tf) = 1 + ln tf`` (sublinear) or ``tf``, and ``P = diag(idf) · svdᵀ`` ``[V, k]``.
    The l2 normalisation of the TF-IDF vector before the SVD is a positive per-row factor that
    the final l2 normalisation removes, so it is skipped. Needs an SVD and ``normalize``.
    """
    cfg = featurizer.config
    if cfg.svd_dims is None or not cfg.normalize:
        raise ValueError("the sparse projection needs svd_dims and normalize=True")
    graph = model.graph
    nodes = list(graph.node)
    cut = next(i for i, n in enumerate(nodes) if n.op_type == "TfIdfVectorizer")
    tf = nodes[cut].output[0]
    del graph.node[cut + 1 :]
    used = {name for n in graph.node for name in n.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
    vec = featurizer.pipeline.steps[0][1]
    svd = featurizer.pipeline.steps[1][1]
    proj = np.asarray(vec.idf_, np.float64)[:, None] * svd.components_.T
    k = proj.shape[1]
    graph.initializer.extend(
        [
            numpy_helper.from_array(proj.astype(np.float32), "sparse_projection"),
            numpy_helper.from_array(np.array(0, np.int64), "sparse_row_axis"),
            numpy_helper.from_array(np.array(1, np.int64), "sparse_col_axis"),
            numpy_helper.from_array(np.array([1], np.int64), "sparse_unsqueeze_axis"),
            numpy_helper.from_array(np.array([k], np.int64), "sparse_width"),
            numpy_helper.from_array(np.array(1.0, np.float32), "sparse_one"),
        ]
    )
    weight = "sparse_tf"
    new = [
        helper.make_node("NonZero", [tf], ["sparse_nz"]),
        helper.make_node("Transpose", ["sparse_nz"], ["sparse_nz_t"], perm=[1, 0]),
        helper.make_node("GatherND", [tf, "sparse_nz_t"], ["sparse_tf"]),
    ]
    if cfg.sublinear_tf:  # non-zero counts are >= 1: sklearn's 1 + ln(tf)
        weight = "sparse_sublinear"
        new += [
            helper.make_node("Log", ["sparse_tf"], ["sparse_log"]),
            helper.make_node("Add", ["sparse_log", "sparse_one"], [weight]),
        ]
    new += [
        helper.make_node("Gather", ["sparse_nz", "sparse_row_axis"], ["sparse_rows"], axis=0),
        helper.make_node("Gather", ["sparse_nz", "sparse_col_axis"], ["sparse_cols"], axis=0),
        helper.make_node("Gather", ["sparse_projection", "sparse_cols"], ["sparse_p"], axis=0),
        helper.make_node("Unsqueeze", [weight, "sparse_unsqueeze_axis"], ["sparse_w"]),
        helper.make_node("Mul", ["sparse_p", "sparse_w"], ["sparse_contrib"]),
        helper.make_node("Unsqueeze", ["sparse_rows", "sparse_unsqueeze_axis"], ["sparse_idx"]),
        helper.make_node("Shape", [tf], ["sparse_batch"], start=0, end=1),
        helper.make_node("Concat", ["sparse_batch", "sparse_width"], ["sparse_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["sparse_shape"],
            ["sparse_zeros"],
            value=numpy_helper.from_array(np.array([0.0], np.float32)),
        ),
        helper.make_node(
            "ScatterND",
            ["sparse_zeros", "sparse_idx", "sparse_contrib"],
            ["sparse_sum"],
            reduction="add",
        ),
        helper.make_node(
            "Normalizer", ["sparse_sum"], ["features"], domain="ai.onnx.ml", norm="L2"
        ),
    ]
    graph.node.extend(new)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, SPARSE_MIN_OPSET)


def tfidf_to_onnx(
    featurizer: TfidfFeaturizer, input_rank: int = 2, *, sparse: bool | None = None
) -> onnx.ModelProto:
    """Convert the fitted pipeline; see the module docstring for the graph contract.

    ``sparse``: project only the non-zero terms (:func:`_sparse_projection`); ``None`` (the
    default) does so whenever the pipeline has an SVD and a final l2 normalisation.
    """
    cfg = featurizer.config
    can_sparse = cfg.svd_dims is not None and cfg.normalize
    if sparse is None:
        sparse = can_sparse
    elif sparse and not can_sparse:
        raise ValueError("sparse=True needs svd_dims and normalize=True")
    if input_rank not in (1, 2):
        raise ValueError(f"input_rank must be 1 or 2, got {input_rank}")
    shape = [None, 1] if input_rank == 2 else [None]
    vec = featurizer.pipeline.steps[0][1]
    model: onnx.ModelProto = convert_sklearn(
        featurizer.pipeline,
        initial_types=[("text", StringTensorType(shape))],
        final_types=[("features", FloatTensorType([None, featurizer.n_features]))],
        options={id(vec): {"locale": LOCALE, "tokenexp": ONNX_WORD_REGEX}},
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    if sparse:
        _sparse_projection(featurizer, model)
    elif featurizer.config.sublinear_tf:
        _patch_sublinear_tf(model)
    model.ir_version = IR_VERSION
    model.producer_name = "routeiq-converters"
    onnx.checker.check_model(model)
    return model


def run_tfidf_onnx(session: Any, texts: Sequence[str]) -> FloatArray:
    """Run a TF-IDF session on ``texts``; shapes the input for rank 1 or 2."""
    rank = len(session.get_inputs()[0].shape)
    batch = np.array(list(texts), dtype=object)
    batch = batch.reshape(-1, 1) if rank == 2 else batch
    (out,) = session.run(["features"], {"text": batch})
    return np.asarray(out, dtype=np.float32)


def tfidf_parity(
    featurizer: TfidfFeaturizer, model: onnx.ModelProto, texts: Sequence[str]
) -> dict[str, float]:
    """Compare scikit-learn and ONNX features on ``texts`` (held-out queries).

    Returns ``max_abs_diff`` (over all entries), ``min_cosine`` and ``mean_cosine`` (row-wise;
    two all-zero rows count as cosine 1, one all-zero row as 0), ``mismatch_rows`` (rows with
    any entry differing by more than 1e-4) and ``n``.
    """
    ref = featurizer.transform(texts).astype(np.float64)
    got = run_tfidf_onnx(ort_session(model), texts).astype(np.float64)
    num = (ref * got).sum(axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    both_zero = (np.abs(ref).sum(axis=1) == 0) & (np.abs(got).sum(axis=1) == 0)
    cos = np.where(both_zero, 1.0, np.divide(num, den, out=np.zeros_like(num), where=den > 0))
    diff = np.abs(ref - got)
    return {
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "min_cosine": float(cos.min()) if cos.size else 1.0,
        "mean_cosine": float(cos.mean()) if cos.size else 1.0,
        "mismatch_rows": float((diff.max(axis=1) > 1e-4).sum()) if diff.size else 0.0,
        "n": float(len(ref)),
    }
