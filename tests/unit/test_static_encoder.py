"""The static encoder distilled from the MiniLM weights: its graph against a numpy reference,
its token weights, embeddings that still tell related texts from unrelated ones, and the
service's numpy evaluation of the graph (same output as ONNX Runtime; a graph numpy would
misread stays with ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tokenizers import Tokenizer

from converters.features import minilm, static
from converters.onnx_common import onnx_op_types
from router_service.featurizers.minilm import MiniLMFeaturizer

TEXTS = [
    "How do I reset my password?",
    "Ünïcödé façade, naïve café; 日本語のテキスト; emojis 🎉",
    "def reverse(xs):\n    return xs[::-1]",
    "Prove that the square root of two is irrational.",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(minilm.tokenizer_path(minilm.find_weights_dir())))


def test_the_graph_is_the_weighted_mean_of_token_vectors(tokenizer: Tokenizer) -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(tokenizer.get_vocab_size(), 8)).astype(np.float32)
    weights = static.token_weights(tokenizer, TEXTS)  # sif: not all equal
    model = static.build_static_onnx(table, weights)
    assert {op for _, op in onnx_op_types(model)} <= {
        "Gather", "Cast", "Mul", "Unsqueeze", "ReduceSum", "ReduceL2", "Max", "Div",
    }  # fmt: skip
    assert static.parity_check(model, tokenizer, TEXTS) > 0.9999


def test_token_weights_fall_with_frequency_and_ignore_special_tokens(
    tokenizer: Tokenizer,
) -> None:
    weights = static.token_weights(tokenizer, ["the cat", "the dog", "the end"])
    the, cat, unseen = (tokenizer.token_to_id(t) for t in ("the", "cat", "zebra"))
    assert weights[the] < weights[cat] < weights[unseen] == 1.0
    assert weights[tokenizer.token_to_id("[CLS]")] == weights[tokenizer.token_to_id("[SEP]")] == 0


def test_distill_centres_and_keeps_the_strongest_directions() -> None:
    rng = np.random.default_rng(1)
    vectors = (rng.normal(size=(500, 16)) * np.linspace(3, 0.1, 16) + 5).astype(np.float32)
    out = static.distill(vectors, 4)
    assert out.shape == (500, 4)
    assert np.abs(out.mean(axis=0)).max() < 1e-4  # the shared direction is gone
    variances = out.var(axis=0)
    assert (np.diff(variances) <= 1e-6).all()  # strongest first


@pytest.fixture(scope="module")
def distilled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("static") / "static.onnx"
    static.build_static(minilm.find_weights_dir(), path)
    return path


def test_the_distilled_encoder_keeps_meaning(distilled: Path) -> None:
    featurizer = MiniLMFeaturizer(
        distilled, minilm.tokenizer_path(minilm.find_weights_dir()), name="static"
    )
    assert featurizer.dim == static.DEFAULT_DIMS and featurizer.name == "static"
    a, b, c = featurizer.featurize(
        [
            "How can I change my account password?",
            "I forgot my login password, how do I reset it?",
            "What is the boiling point of water at sea level?",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.1
    assert np.allclose(np.linalg.norm(featurizer.featurize(TEXTS), axis=1), 1.0, atol=1e-5)


def test_numpy_serves_the_static_graph_as_onnx_runtime_does(distilled: Path) -> None:
    tokenizer = minilm.tokenizer_path(minilm.find_weights_dir())
    served = MiniLMFeaturizer(distilled, tokenizer, name="static")
    graph = MiniLMFeaturizer(distilled, tokenizer, name="static-graph")  # another name: ORT
    assert (served.evaluator, graph.evaluator) == ("numpy", "onnxruntime")
    texts = [*TEXTS, "", "[MASK]", "Solve for x: 3x + 7 = 40. " * 30]
    assert np.abs(served.featurize(texts) - graph.featurize(texts)).max() <= 1e-5
    for text in texts:  # one at a time too
        assert np.abs(served.featurize([text]) - graph.featurize([text])).max() <= 1e-5
    assert served.featurize([]).shape == (0, static.DEFAULT_DIMS)


def test_a_graph_numpy_would_misread_stays_with_onnx_runtime(
    distilled: Path, tmp_path: Path
) -> None:
    """Same ten operators, but an epsilon of 1e3 under the norm: only ONNX Runtime gets it
    right, so the featurizer must notice at load and keep ONNX Runtime."""
    model = onnx.load(str(distilled))
    (eps,) = [t for t in model.graph.initializer if t.name == "eps"]
    eps.CopyFrom(numpy_helper.from_array(np.array(1e3, dtype=np.float32), "eps"))
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    featurizer = MiniLMFeaturizer(
        path, minilm.tokenizer_path(minilm.find_weights_dir()), name="static"
    )
    assert featurizer.evaluator == "onnxruntime"
    norms = np.linalg.norm(featurizer.featurize(TEXTS), axis=1)
    assert (norms < 0.5).all()  # the graph's own arithmetic: divided by 1e3, not normalised
