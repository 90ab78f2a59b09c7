"""TF-IDF featurizer: tokenizer agreement, sklearn/ONNX parity, graph contract."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from converters.datasets import SHIPPED_DATA as DATA
from converters.features.tfidf import (
    LOCALE,
    ONNX_WORD_REGEX,
    TFIDF_DENSE_OP_TYPES,
    TFIDF_OP_TYPES,
    TfidfConfig,
    fit_tfidf,
    run_tfidf_onnx,
    tfidf_parity,
    tfidf_to_onnx,
)
from converters.onnx_common import IR_VERSION, onnx_op_types, ort_session

TRAIN = [
    "What is the capital of France? Paris is the capital.",
    "Compute 3.14 * 2 and round to 2 decimals; then add 42.",
    "Write a Python function snake_case_name(x) that returns x ** 2.",
    "Qu'est-ce que la café au lait? Un café avec du lait, à Paris.",
    "Привет мир! Как дела? привет ещё раз",
    "東京は日本の首都です。 東京 大阪",
    "HELLO hello HeLLo world WORLD",
    "Straße und STRASSE in München; Größe 10 × 20",
    "e-mail me at foo@bar.com (urgent!!!) [ref: #123]",
    "Solve: if x + y = 10 and x - y = 2, what is x?",
    "The quick brown fox jumps over the lazy dog; the dog sleeps.",
    "Translate 'good morning' into Spanish: buenos días",
] * 3
TRICKY = [
    "",
    "   ",
    "!!! ??? ...",
    "completely unseen vocabulary zebra quasar",
    "hello HELLO Hello hello",
    "capital of France, Paris!",
    "3.14 42 2 10",
    "snake_case_name and x ** 2",
    "café CAFÉ Café",
    "ПРИВЕТ мир",
    "東京 大阪 東京",
    "STRASSE straße größe",
    "emoji 😀 hello 🎉 world",
    "tab\tseparated\nnew line\r\nParis",
    "foo@bar.com #123 [ref]",
]


def _tokenize_onnx(texts: list[str]) -> list[list[str]]:
    """Run the exact StringNormalizer + Tokenizer configuration of the converted graph."""
    nodes = [
        helper.make_node(
            "StringNormalizer",
            ["text"],
            ["lower"],
            case_change_action="LOWER",
            is_case_sensitive=False,
            locale=LOCALE,
        ),
        helper.make_node(
            "Tokenizer",
            ["lower"],
            ["tokens"],
            domain="com.microsoft",
            mark=False,
            mincharnum=1,
            pad_value="#",
            tokenexp=ONNX_WORD_REGEX,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "tok",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("tokens", TensorProto.STRING, None)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    model.ir_version = IR_VERSION
    session = ort_session(model)
    out = []
    for text in texts:
        (tokens,) = session.run(None, {"text": np.array([text], dtype=object)})
        out.append([str(t) for t in np.ravel(tokens) if t != "#"])
    return out


def test_tokenizers_agree_on_punctuation_numbers_unicode_and_case() -> None:
    featurizer = fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=None))
    analyzer = featurizer.pipeline.steps[0][1].build_tokenizer()
    texts = [t for t in TRAIN[:12] + TRICKY if t.strip()]
    expected = [analyzer(t.lower()) for t in texts]
    assert _tokenize_onnx(texts) == expected
    assert expected[TRAIN.index("HELLO hello HeLLo world WORLD")] == ["hello"] * 3 + ["world"] * 2
    assert analyzer("café 3.14 東京") == ["café", "14", "東京"]  # 1-char tokens are dropped


@pytest.mark.parametrize("svd_dims", [None, 8])
def test_sklearn_and_onnx_features_match(svd_dims: int | None) -> None:
    config = TfidfConfig(min_df=1, max_features=500, svd_dims=svd_dims)
    featurizer = fit_tfidf(TRAIN, config)
    model = tfidf_to_onnx(featurizer)
    parity = tfidf_parity(featurizer, model, TRICKY + TRAIN[:12])
    assert parity["max_abs_diff"] < 1e-5
    assert parity["min_cosine"] > 0.99999
    assert parity["mismatch_rows"] == 0
    features = featurizer.transform(TRICKY)
    assert features.dtype == np.float32 and features.shape == (len(TRICKY), featurizer.n_features)
    np.testing.assert_array_equal(features[0], 0.0)  # empty text -> all-zero row, no NaN
    norms = np.linalg.norm(features[4:], axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)


def test_sublinear_tf_matches_sklearn_for_repeated_words() -> None:
    featurizer = fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=None, normalize=False))
    model = tfidf_to_onnx(featurizer)
    texts = ["hello", "hello hello", "hello hello hello hello world"]
    got = run_tfidf_onnx(ort_session(model), texts)
    np.testing.assert_allclose(got, featurizer.transform(texts), atol=1e-6)
    vocab = featurizer.pipeline.steps[0][1].vocabulary_
    hello, world = vocab["hello"], vocab["world"]
    # l2-normalised 1 + ln(tf) weights times idf: hello (tf 4) outweighs world (tf 1)
    idf = featurizer.pipeline.steps[0][1].idf_
    ratio = got[2, hello] / got[2, world]
    assert ratio == pytest.approx((1 + np.log(4)) * idf[hello] / idf[world], rel=1e-5)


def test_graph_contract_and_op_types() -> None:
    featurizer = fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=4))
    model = tfidf_to_onnx(featurizer)
    assert [i.name for i in model.graph.input] == ["text"]
    assert [o.name for o in model.graph.output] == ["features"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == featurizer.n_features == 4
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.STRING
    assert model.ir_version == IR_VERSION
    assert onnx_op_types(model) == TFIDF_OP_TYPES
    dense = tfidf_to_onnx(featurizer, sparse=False)
    assert onnx_op_types(dense) == TFIDF_DENSE_OP_TYPES
    no_svd = tfidf_to_onnx(fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=None)))
    assert onnx_op_types(no_svd) == TFIDF_DENSE_OP_TYPES - {("", "MatMul")}
    assert not [i for i in dense.graph.initializer if i.name == "ones"]  # patched away
    # the sparse graph keeps no dense [V, k] SVD matrix beside its own projection
    assert [i.name for i in model.graph.initializer if len(i.dims) == 2] == ["sparse_projection"]


@pytest.mark.parametrize("sublinear", [True, False])
def test_sparse_projection_equals_dense_graph_and_sklearn(sublinear: bool) -> None:
    config = TfidfConfig(min_df=1, svd_dims=6, sublinear_tf=sublinear)
    featurizer = fit_tfidf(TRAIN, config)
    texts = TRICKY + TRAIN[:12]
    sparse = run_tfidf_onnx(ort_session(tfidf_to_onnx(featurizer)), texts)
    dense = run_tfidf_onnx(ort_session(tfidf_to_onnx(featurizer, sparse=False)), texts)
    ref = featurizer.transform(texts)
    np.testing.assert_allclose(sparse, ref, atol=2e-6)
    np.testing.assert_allclose(sparse, dense, atol=2e-6)
    # texts without a known term give all-zero rows, as in scikit-learn
    assert not sparse[0].any() and not sparse[1].any() and not ref[0].any()
    # one row at a time (how the service calls it) gives the same rows as a batch
    session = ort_session(tfidf_to_onnx(featurizer))
    singles = np.concatenate([run_tfidf_onnx(session, [t]) for t in texts])
    np.testing.assert_allclose(singles, sparse, atol=1e-6)
    norms = np.linalg.norm(sparse, axis=1)
    assert np.all((np.abs(norms - 1.0) < 1e-5) | (norms == 0.0))


def test_sparse_projection_needs_svd_and_l2() -> None:
    no_svd = fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=None))
    with pytest.raises(ValueError, match="sparse"):
        tfidf_to_onnx(no_svd, sparse=True)
    unnormalised = fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=4, normalize=False))
    model = tfidf_to_onnx(unnormalised)  # falls back to the dense graph
    assert ("", "MatMul") in onnx_op_types(model)
    got = run_tfidf_onnx(ort_session(model), TRICKY)
    np.testing.assert_allclose(got, unnormalised.transform(TRICKY), atol=1e-6)


def test_rank1_input_gives_the_same_features() -> None:
    featurizer = fit_tfidf(TRAIN, TfidfConfig(min_df=1, svd_dims=6))
    rank2 = run_tfidf_onnx(ort_session(tfidf_to_onnx(featurizer)), TRICKY)
    model1 = tfidf_to_onnx(featurizer, input_rank=1)
    assert len(model1.graph.input[0].type.tensor_type.shape.dim) == 1
    np.testing.assert_allclose(run_tfidf_onnx(ort_session(model1), TRICKY), rank2, atol=1e-6)
    with pytest.raises(ValueError, match="input_rank"):
        tfidf_to_onnx(featurizer, input_rank=3)


def test_vocabulary_is_closed_under_bigram_words() -> None:
    featurizer = fit_tfidf(TRAIN, TfidfConfig(min_df=1, max_features=40, svd_dims=None))
    vocab = set(featurizer.pipeline.steps[0][1].vocabulary_)
    bigram_words = {w for term in vocab if " " in term for w in term.split(" ")}
    assert bigram_words <= vocab
    assert 40 <= len(vocab) <= 40 + len(bigram_words)
    assert featurizer.n_features == featurizer.vocabulary_size == len(vocab)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="ngram_max"):
        fit_tfidf(TRAIN, TfidfConfig(ngram_max=3))


def test_real_queries_parity() -> None:
    from converters.datasets import load_llmrouter

    ds = load_llmrouter(DATA / "llmrouter")
    train, test = ds.train(), ds.test()
    config = TfidfConfig(max_features=4000, svd_dims=32)
    featurizer = fit_tfidf(train.queries[::3], config)
    parity = tfidf_parity(featurizer, tfidf_to_onnx(featurizer), test.queries)
    assert parity["n"] == 500
    assert parity["max_abs_diff"] < 1e-5
    assert parity["min_cosine"] > 0.9999
