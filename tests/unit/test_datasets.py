"""Dataset loaders: the common form, the wide format and its errors, LLMRouter and RouteLLM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from converters.datasets import (
    ROUTELLM_PRICES,
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    RoutingDataset,
    hash_split,
    load,
    load_llmrouter,
    load_routellm,
    load_wide,
    write_wide,
)
from converters.datasets import SHIPPED_DATA as DATA


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _small(tmp_path: Path) -> Path:
    header = ["id", "query", "split", "task", "org/a__quality", "b__quality"]
    header += ["org/a__cost_usd", "b__cost_usd"]
    rows: list[list[object]] = [
        ["1", "what is 2+2", "train", "math", 1, 0.5, 0.01, 0.001],
        ["2", "capital of France?", "test", "qa", 0.25, 1.0, 0.02, 0.002],
        ["3", "no split here", "", "", 0, 0, 0.0, 0.0],
    ]
    return _write_csv(tmp_path / "small.csv", header, rows)


# --------------------------------------------------------------------------- common form


def test_hash_split_is_deterministic_and_about_the_fraction() -> None:
    keys = [f"query {i}" for i in range(5000)]
    first = hash_split(keys, 0.2)
    assert np.array_equal(first, hash_split(list(keys), 0.2))
    assert 0.18 < float(np.mean(first == "test")) < 0.22
    # sha256("a") starts with 0xca97…, i.e. 0.79 of the range: train at 20 %, test at 80 %
    assert hash_split(["a"], 0.2)[0] == "train"
    assert hash_split(["a"], 0.8)[0] == "test"
    with pytest.raises(ValueError, match="test_fraction"):
        hash_split(keys, 1.0)


def test_dataset_validates_and_subsets() -> None:
    quality = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], dtype=np.float32)
    split = np.array(["train", "test", "train"])
    ds = RoutingDataset("d", ("a", "b"), ("q1", "q2", "q3"), quality, None, split, ("x", "y", "z"))
    train, test = ds.train(), ds.test()
    assert train.queries == ("q1", "q3") and test.queries == ("q2",)
    assert train.task == ("x", "z")
    np.testing.assert_array_equal(test.quality, [[0.5, 0.5]])
    bad = quality.copy()
    bad[0, 0] = 1.5
    with pytest.raises(ValueError, match=r"quality values must be \[0, 1"):
        RoutingDataset("d", ("a", "b"), ("q1", "q2", "q3"), bad, None, split)
    with pytest.raises(ValueError, match="split values"):
        RoutingDataset("d", ("a", "b"), ("q1", "q2", "q3"), quality, None, np.array(["x"] * 3))
    with pytest.raises(ValueError, match="float32"):
        RoutingDataset("d", ("a", "b"), ("q1", "q2", "q3"), quality.astype(float), None, split)


def test_price_vector_blends_input_and_output() -> None:
    quality = np.zeros((1, 2), dtype=np.float32)
    ds = RoutingDataset(
        "d", ("a", "b"), ("q",), quality, None, np.array(["train"]), prices={"a": (1.0, 3.0)}
    )
    assert ds.price_vector() is None  # b has no price
    full = RoutingDataset(
        "d",
        ("a", "b"),
        ("q",),
        quality,
        None,
        np.array(["train"]),
        prices={"a": (1.0, 3.0), "b": (10.0, 30.0)},
    )
    np.testing.assert_allclose(full.price_vector(), [2.0, 20.0])


# --------------------------------------------------------------------------- wide format


def test_load_wide_csv(tmp_path: Path) -> None:
    ds = load_wide(_small(tmp_path))
    assert ds.name == "small"
    assert ds.models == ("org/a", "b")
    assert ds.queries[1] == "capital of France?"
    np.testing.assert_allclose(ds.quality, [[1, 0.5], [0.25, 1], [0, 0]])
    assert ds.cost is not None
    np.testing.assert_allclose(ds.cost[:, 0], [0.01, 0.02, 0.0])
    assert ds.task == ("math", "qa", "unknown")
    assert list(ds.split[:2]) == ["train", "test"]
    assert ds.split[2] == hash_split(["3"])[0]  # hashed on the id


def test_wide_round_trip_csv_and_jsonl(tmp_path: Path) -> None:
    ds = load_wide(_small(tmp_path))
    for name in ("copy.csv", "copy.jsonl"):
        back = load_wide(write_wide(ds, tmp_path / name))
        assert back.models == ds.models and back.queries == ds.queries and back.task == ds.task
        np.testing.assert_allclose(back.quality, ds.quality)
        assert back.cost is not None and ds.cost is not None
        np.testing.assert_allclose(back.cost, ds.cost)
        assert list(back.split) == list(ds.split)


def test_load_wide_jsonl_without_cost_and_booleans(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    lines = [
        {"query": "a", "m1__quality": True, "m2__quality": 0.5},
        {"query": "b", "m1__quality": "false", "m2__quality": "1"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    ds = load(path, "wide")
    np.testing.assert_allclose(ds.quality, [[1, 0.5], [0, 1]])
    assert ds.cost is None and ds.task is None
    assert list(ds.split) == list(hash_split(["a", "b"]))


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (["text", "m__quality"], ["q", 1], "missing required column 'query'"),
        (["query", "m__score"], ["q", 1], "no '<model>__quality' columns"),
        (["query", "m__quality"], ["q", 1.5], r"line 2 column 'm__quality': quality 1.5"),
        (["query", "m__quality"], ["q", "high"], r"line 2 column 'm__quality': .*non-numeric"),
        (["query", "m__quality"], ["q", ""], r"line 2 column 'm__quality': missing"),
        (["query", "m__quality"], ["q", "nan"], "non-finite"),
        (["query", "m__quality"], ["", 1], "line 2: column 'query' is missing or empty"),
        (["query", "split", "m__quality"], ["q", "dev", 1], "column 'split' must be train/test"),
        (["query", "a__quality", "b__quality", "a__cost_usd"], ["q", 1, 1, 0], "missing"),
        (["query", "a__quality", "x__cost_usd"], ["q", 1, 0], "without a quality column"),
        (["query", "a__quality", "a__cost_usd"], ["q", 1, -1], "negative cost"),
    ],
)
def test_load_wide_errors_name_the_problem(
    tmp_path: Path, header: list[str], row: list[object], message: str
) -> None:
    path = _write_csv(tmp_path / "bad.csv", header, [row])
    with pytest.raises(ValueError, match=message):
        load_wide(path)


def test_load_wide_jsonl_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "a", "m__quality": 1}\n{not json}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: invalid JSON"):
        load_wide(path)
    path.write_text('{"query": "a", "m__quality": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected a JSON object"):
        load_wide(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="missing required column 'query'"):
        load_wide(path)


def test_load_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset format 'parquet'"):
        load(tmp_path, "parquet")


# --------------------------------------------------------------------------- LLMRouter


def _fake_llmrouter(root: Path) -> Path:
    pre = root / "dcrouter_preprocessed"
    pre.mkdir(parents=True)
    rows = [
        {"question": "q1", "scores": {"zeta-7b": 1.0, "alpha-70b": 0.0}, "cluster_id": 0},
        {"question": "q2", "scores": {"alpha-70b": 0.5, "zeta-7b": 0.25}, "cluster_id": 1},
    ]
    (pre / "train.json").write_text(json.dumps(rows), encoding="utf-8")
    test = [{"question": "q3", "scores": {"zeta-7b": 0.0, "alpha-70b": 1.0}, "cluster_id": 0}]
    (pre / "test.json").write_text(json.dumps(test), encoding="utf-8")
    cards = root / "example_data" / "llm_candidates"
    cards.mkdir(parents=True)
    prices = {
        "zeta-7b": {"input_price": 0.2, "output_price": 0.3, "model": "v/zeta-7b"},
        "other": {"input_price": 0.9, "output_price": 0.9, "model": "vendor/alpha-70b"},
    }
    (cards / "default_llm.json").write_text(json.dumps(prices), encoding="utf-8")
    qdir = root / "example_data" / "query_data"
    qdir.mkdir(parents=True)
    train_q = [{"query": "q1", "task_name": "math"}, {"query": "q2", "task_name": "qa"}]
    (qdir / "default_query_train.jsonl").write_text(
        "\n".join(json.dumps(x) for x in train_q), encoding="utf-8"
    )
    (qdir / "default_query_test.jsonl").write_text(
        json.dumps({"query": "q3", "task_name": "code"}), encoding="utf-8"
    )
    return root


def test_load_llmrouter_synthetic(tmp_path: Path) -> None:
    root = _fake_llmrouter(tmp_path / "llmrouter")
    for path in (root, root / "dcrouter_preprocessed"):
        ds = load_llmrouter(path)
        assert ds.models == ("alpha-70b", "zeta-7b")  # sorted
        np.testing.assert_allclose(ds.quality, [[0, 1], [0.5, 0.25], [1, 0]])
        assert list(ds.split) == ["train", "train", "test"]
        assert ds.task == ("math", "qa", "code")
        assert ds.cost is None
        # alpha-70b is matched through the card's "model" field (vendor prefix dropped)
        assert ds.prices == {"alpha-70b": (0.9, 0.9), "zeta-7b": (0.2, 0.3)}


def test_load_llmrouter_rejects_inconsistent_models(tmp_path: Path) -> None:
    root = _fake_llmrouter(tmp_path / "llmrouter")
    bad = [{"question": "q", "scores": {"zeta-7b": 1.0}}]
    (root / "dcrouter_preprocessed" / "test.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ValueError, match=r"test.json: row 0 scores models"):
        load_llmrouter(root)


# --------------------------------------------------------------------------- RouteLLM


def _fake_routellm(root: Path) -> Path:
    resp = root / "mmlu" / "responses"
    resp.mkdir(parents=True)
    header = ["prompt", ROUTELLM_WEAK, ROUTELLM_STRONG]
    for subject in ("algebra", "biology"):
        rows = [[f"{subject} question {i}", i % 2 == 0, True] for i in range(30)]
        _write_csv(resp / f"mmlu_{subject}.csv", header, rows)
    contaminated = {"train_prompt": "x", "eval_prompt": "algebra question 3"}
    (root / "mmlu" / "contaminated_prompts.jsonl").write_text(
        json.dumps(contaminated) + "\n", encoding="utf-8"
    )
    return root


def test_load_routellm_synthetic(tmp_path: Path) -> None:
    root = _fake_routellm(tmp_path / "routellm")
    ds = load_routellm(root, "mmlu")
    assert ds.n_queries == 59
    assert "algebra question 3" not in ds.queries
    assert ds.models == (ROUTELLM_WEAK, ROUTELLM_STRONG)
    assert ds.prices == ROUTELLM_PRICES
    np.testing.assert_array_equal(ds.quality[:, 1], 1.0)
    assert ds.quality[0, 0] == 1.0 and ds.quality[1, 0] == 0.0
    assert ds.task is not None and set(ds.task) == {"algebra", "biology"}
    for subject in ("algebra", "biology"):
        splits = {s for s, t in zip(ds.split, ds.task, strict=True) if t == subject}
        assert splits == {"train", "test"}
    same = load(root / "mmlu", "routellm")
    assert list(same.split) == list(ds.split)


def test_load_routellm_bad_values(tmp_path: Path) -> None:
    root = _fake_routellm(tmp_path / "routellm")
    header = ["prompt", ROUTELLM_WEAK, ROUTELLM_STRONG]
    _write_csv(root / "mmlu" / "responses" / "mmlu_zoo.csv", header, [["p", "maybe", "True"]])
    with pytest.raises(ValueError, match="expected True/False, got 'maybe'"):
        load_routellm(root)
    with pytest.raises(ValueError, match="benchmark must be"):
        load_routellm(root, "mt_bench")


# --------------------------------------------------------------------------- real data


def test_real_datasets_load_with_the_documented_shape() -> None:
    llm = load(DATA / "llmrouter", "llmrouter")
    train, test = llm.train(), llm.test()
    assert (train.n_queries, test.n_queries, llm.n_models) == (5608, 500, 9)
    assert llm.prices is not None and set(llm.prices) == set(llm.models)
    assert llm.prices["llama3-chatqa-1.5-70b"] == (0.9, 0.9)
    assert llm.task is not None and "unknown" not in llm.task
    assert len(set(train.task or ())) == 14 and len(set(test.task or ())) == 10
    assert abs(float(test.quality.max(axis=1).mean()) - 0.743) < 1e-3  # oracle
    assert abs(float(test.quality.mean()) - 0.376) < 1e-3  # random pick

    mmlu = load(DATA / "routellm", "routellm")
    assert mmlu.n_queries == 14042 - 5
    assert mmlu.task is not None and len(set(mmlu.task)) == 57
    for subject in set(mmlu.task):
        in_subject = np.array([t == subject for t in mmlu.task])
        assert set(mmlu.split[in_subject]) == {"train", "test"}
    np.testing.assert_allclose(mmlu.quality.mean(axis=0), [0.681, 0.806], atol=2e-3)
    assert 0.18 < float(np.mean(mmlu.split == "test")) < 0.22

    gsm = load(DATA / "routellm", "routellm-gsm8k")
    assert gsm.n_queries == 1319 - 12
    np.testing.assert_allclose(gsm.quality.mean(axis=0), [0.638, 0.857], atol=6e-3)
