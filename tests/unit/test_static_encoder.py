"""The static encoder distilled from the MiniLM weights: its graph against a numpy reference,
its token weights, and embeddings that still tell related texts from unrelated ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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


def test_the_distilled_encoder_keeps_meaning(tmp_path: Path) -> None:
    weights_dir = minilm.find_weights_dir()
    path = tmp_path / "static.onnx"
    static.build_static(weights_dir, path)
    featurizer = MiniLMFeaturizer(path, minilm.tokenizer_path(weights_dir), name="static")
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
