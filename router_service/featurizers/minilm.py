"""MiniLM sentence-encoder featurizer: tokenizer.json + an ONNX graph, run by onnxruntime.

The graph is the one :mod:`converters.features.minilm` exports (fp32 or its int8 copy): inputs
``input_ids`` and ``attention_mask`` (int64 ``[batch, seq]``), output ``embedding`` (float32
``[batch, dim]``, mean-pooled and L2-normalised). This module imports numpy, onnxruntime and
tokenizers only, and does no work at import time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from router_service.featurizers.base import InputKind
from router_service.featurizers.static import TOLERANCE, StaticTables
from router_service.featurizers.wordpiece import TokenIds
from router_service.onnx_session import make_session

__all__ = ["MiniLMFeaturizer", "length_groups"]

logger = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask")
_OUTPUT = "embedding"
_HASH_CHUNK = 1 << 20
_PAD_SLACK = 1.25  # a length group's padded tokens stay within this factor of its own tokens
_PROBES = (  # texts on which a static graph's numpy evaluation must agree with ONNX Runtime
    "",
    "hi",
    "How many prime numbers are there below one hundred?",
    "Ünïcödé façade, naïve café; 日本語のテキスト; Ελληνικά",
    "def reverse(xs: list[int]) -> list[int]:\n    return xs[::-1]  # [MASK] [UNK]",
    "Solve for x: 3x + 7 = 40, then explain each step to a twelve-year-old. " * 8,
)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _load_tokenizer(path: Path, max_length: int) -> tuple[Tokenizer, int]:
    """Load ``tokenizer.json`` with truncation at ``max_length`` and padding disabled.

    The file fixes padding at 128 tokens; padding is done per batch by the featurizer instead.
    Returns the tokenizer and its pad id (from the file's padding settings, else ``[PAD]``).
    """
    tokenizer = Tokenizer.from_file(str(path))
    padding = tokenizer.padding
    pad_id = padding.get("pad_id") if padding else tokenizer.token_to_id("[PAD]")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer, int(pad_id or 0)


def _output_dim(session: ort.InferenceSession) -> int:
    """Check the graph's input and output names and return the static embedding width."""
    names = {node.name for node in session.get_inputs()}
    if names != set(_INPUTS):
        raise ValueError(f"encoder graph inputs are {sorted(names)}, expected {list(_INPUTS)}")
    outputs = {node.name: node for node in session.get_outputs()}
    if _OUTPUT not in outputs:
        raise ValueError(f"encoder graph has no {_OUTPUT!r} output")
    shape = outputs[_OUTPUT].shape
    if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] <= 0:
        raise ValueError(f"encoder output shape {shape} is not [batch, dim] with a static dim")
    return int(shape[1])


def _pad(rows: Sequence[list[int]], pad_id: int) -> dict[str, npt.NDArray[np.int64]]:
    """Right-pad the token ids to the longest row: ``input_ids`` and ``attention_mask``."""
    if len(rows) == 1:
        ids = np.array(rows, dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    longest = max(len(row) for row in rows)
    ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class MiniLMFeaturizer:
    """Sentence embeddings from the MiniLM ONNX encoder: float32 ``[n, dim]``, unit L2 norm.

    ``name`` is ``"minilm"`` (``"static"`` for the distilled static encoder, a graph with the
    same inputs and output); ``dim`` is read from the graph's output shape (384 for
    all-MiniLM-L6-v2); ``sha256`` identifies the featurizer's output: a hash of the ONNX file's
    SHA-256 (the caller may pass it, having verified it already), the tokenizer file's and
    ``max_length``. Texts longer than ``max_length`` tokens (special tokens
    included) are truncated. A batch runs in groups of similar token counts (see
    :func:`length_groups`), each padded to its longest text; one text runs unpadded. With an
    fp32 graph padding does not change the embeddings (padded positions are masked out; batch
    and single runs agree within 1e-6). With the int8 graph activations are quantised
    per batch, so a text's embedding depends slightly on its batch-mates (cosine to its single
    run measured >= 0.96); featurize one text at a time where bit-stability matters (pass
    ``quantized=True`` for such a graph: ``batch_invariant`` is then false and the engine's
    micro-batching featurizes its texts one by one).

    A static encoder's graph is evaluated with numpy from its own tables once the two agree on
    probe texts (:mod:`router_service.featurizers.static`: 2x faster per prompt).

    Token ids come from :class:`~router_service.featurizers.wordpiece.TokenIds`: the same ids as
    ``tokenizer.json``, word by word for ASCII text (14 µs for a typical prompt instead of 60–70).

    The session uses ``intra_op_threads`` intra-op threads, one inter-op thread, sequential
    execution and all graph optimisations. ``featurize`` is synchronous and may be called from
    several threads at once.
    """

    name: str = "minilm"
    input_kind: InputKind = "text"

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_path: Path,
        *,
        max_length: int = 256,
        intra_op_threads: int = 1,
        sha256: str | None = None,
        quantized: bool = False,
        name: str = "minilm",
    ) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be at least 1, got {intra_op_threads}")
        self.name = name
        self.onnx_path = Path(onnx_path)
        self.max_length = max_length
        self.batch_invariant = not quantized
        """False for the int8 graph: the engine then featurizes its texts one at a time."""
        tokenizer, self._pad_id = _load_tokenizer(Path(tokenizer_path), max_length)
        self.token_ids = TokenIds(tokenizer, Path(tokenizer_path), max_length)
        """How texts become token ids (see :class:`TokenIds`)."""
        self._session = make_session(str(self.onnx_path), intra_op_threads)
        self.dim: int = _output_dim(self._session)
        self._tables = self._static_tables() if name == "static" else None
        self.evaluator = "numpy" if self._tables is not None else "onnxruntime"
        """What evaluates the graph: ``numpy`` for a static encoder's (see :mod:`.static`)."""
        graph_sha = sha256 or _file_sha256(self.onnx_path)
        identity = f"{name}:{graph_sha}:{_file_sha256(Path(tokenizer_path))}:{max_length}"
        self.sha256: str = hashlib.sha256(identity.encode()).hexdigest()
        """Covers the graph, the tokenizer and the truncation: bundles that share an encoder
        but not its tokenizer or ``max_length`` never share feature-cache entries."""
        logger.info("loaded %s encoder %s (dim %d)", self.name, self.onnx_path, self.dim)

    def _static_tables(self) -> StaticTables | None:
        """The graph's tables when it is a static encoder and numpy agrees with ONNX Runtime
        on :data:`_PROBES`; None (ONNX Runtime serves it) otherwise. The session is released
        when numpy takes over (the table would otherwise be held twice)."""
        tables = StaticTables.from_graph(self.onnx_path)
        if tables is None:
            return None
        rows = [self.token_ids.ids(text) for text in _PROBES]
        ours = tables.embed(rows)
        for row, want in zip(rows, ours, strict=True):
            (got,) = self._session.run([_OUTPUT], _pad([row], self._pad_id))
            if not np.allclose(got[0], want, rtol=0.0, atol=TOLERANCE):
                logger.warning(
                    "%s: numpy and ONNX Runtime disagree; ONNX Runtime serves it", self.onnx_path
                )
                return None
        del self._session
        return tables

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``: float32 ``[len(texts), dim]``, each row L2-normalised.

        An empty sequence gives an empty ``[0, dim]`` array. Raises :class:`TypeError` when
        ``texts`` is a bare string (a sequence of characters would be embedded otherwise).
        """
        if isinstance(texts, str):
            raise TypeError("featurize takes a sequence of texts, not a single str")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._tables is not None:
            return self._tables.embed([self.token_ids.ids(text) for text in texts])
        if len(texts) == 1:
            feed = _pad([self.token_ids.ids(texts[0])], self._pad_id)
            (emb,) = self._session.run([_OUTPUT], feed)
            return np.asarray(emb, dtype=np.float32)
        tokens = [self.token_ids.ids(text) for text in texts]
        out = np.empty((len(tokens), self.dim), dtype=np.float32)
        for rows in length_groups([len(ids) for ids in tokens]):
            feed = _pad([tokens[i] for i in rows], self._pad_id)
            (emb,) = self._session.run([_OUTPUT], feed)
            out[rows] = emb
        return out


def length_groups(lengths: Sequence[int], slack: float = _PAD_SLACK) -> list[list[int]]:
    """Indices of ``lengths`` in groups that are cheap to pad together: in order of length, a
    group grows while padding all its texts to the longest costs at most ``slack`` times their
    own tokens. On a CPU a padded token costs as much as a real one (and attention grows with
    the square of the length): 8 real prompts padded to their longest took 2.6x as long as the
    same 8 run one by one."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    tokens = 0
    for i in order:
        n = lengths[i]
        if groups and n * (len(groups[-1]) + 1) <= slack * (tokens + n):
            groups[-1].append(i)
            tokens += n
        else:
            groups.append([i])
            tokens = n
    return groups
