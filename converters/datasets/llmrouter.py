"""LLMRouter's ``dcrouter_preprocessed`` data: 9 open models, quality per query, list prices
and task names from its ``example_data``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from converters.datasets.core import (
    FloatArray,
    RoutingDataset,
    parse_unit,
)

logger = logging.getLogger(__name__)


def _llmrouter_dirs(path: Path) -> tuple[Path, Path]:
    """Return ``(data_dir, root)`` for a path naming ``llmrouter/`` or its preprocessed dir."""
    if (path / "train.json").is_file() and (path / "test.json").is_file():
        return path, path.parent
    inner = path / "dcrouter_preprocessed"
    if (inner / "train.json").is_file() and (inner / "test.json").is_file():
        return inner, path
    raise ValueError(
        f"{path}: expected train.json and test.json here or in {path}/dcrouter_preprocessed"
    )


def _read_json_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        rows = json.load(fh)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: expected a JSON list of objects")
    return rows


def _llmrouter_quality(
    rows: list[dict[str, Any]], models: tuple[str, ...], src: Path
) -> FloatArray:
    out = np.zeros((len(rows), len(models)), dtype=np.float32)
    for i, row in enumerate(rows):
        scores = row.get("scores")
        if not isinstance(row.get("question"), str) or not isinstance(scores, dict):
            raise ValueError(f"{src}: row {i} lacks a string 'question' or a 'scores' object")
        if set(scores) != set(models):
            raise ValueError(f"{src}: row {i} scores models {sorted(scores)} != {list(models)}")
        for j, model in enumerate(models):
            value = parse_unit(scores[model], f"{src}: row {i} model {model!r}")
            out[i, j] = value
    return out


def _load_llm_prices(root: Path, models: tuple[str, ...]) -> dict[str, tuple[float, float]] | None:
    """Prices from ``example_data/llm_candidates/default_llm.json``, matched by card key,
    then by the card's ``model`` field (with or without its ``vendor/`` prefix), then
    case-insensitively. Unmatched models are logged and left without a price."""
    path = root / "example_data" / "llm_candidates" / "default_llm.json"
    if not path.is_file():
        logger.info("no price file at %s", path)
        return None
    with path.open(encoding="utf-8") as fh:
        cards: dict[str, dict[str, Any]] = json.load(fh)
    index: dict[str, tuple[float, float]] = {}
    for key, card in cards.items():
        price = (float(card["input_price"]), float(card["output_price"]))
        full = str(card.get("model", key))
        for alias in (key, full, full.rsplit("/", 1)[-1]):
            index.setdefault(alias, price)
            index.setdefault(alias.lower(), price)
    prices = {m: index.get(m, index.get(m.lower())) for m in models}
    missing = [m for m, p in prices.items() if p is None]
    if missing:
        logger.warning("no price in %s for models %s", path, missing)
    return {m: p for m, p in prices.items() if p is not None}


def _load_task_map(path: Path) -> dict[str, str]:
    """``query -> task_name`` from a JSONL file; the first occurrence of a query wins."""
    tasks: dict[str, str] = {}
    if not path.is_file():
        return tasks
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                tasks.setdefault(str(rec["query"]), str(rec["task_name"]))
    return tasks


def _llmrouter_tasks(root: Path, train_q: list[str], test_q: list[str]) -> tuple[str, ...] | None:
    qdir = root / "example_data" / "query_data"
    train_map = _load_task_map(qdir / "default_query_train.jsonl")
    test_map = _load_task_map(qdir / "default_query_test.jsonl")
    if not train_map and not test_map:
        return None
    tasks: list[str] = []
    for queries, first, second in ((train_q, train_map, test_map), (test_q, test_map, train_map)):
        tasks.extend(first.get(q, second.get(q, "unknown")) for q in queries)
    unknown = tasks.count("unknown")
    if unknown:
        logger.warning("%d queries have no task name in %s", unknown, qdir)
    return tuple(tasks)


def load_llmrouter(path: str | Path) -> RoutingDataset:
    """Load LLMRouter's ``dcrouter_preprocessed`` train.json / test.json.

    ``path`` is the ``llmrouter`` directory or its ``dcrouter_preprocessed`` subdirectory.
    Models are the score keys in sorted order; quality is the given score (0..1). There is no
    per-query cost (``cost=None``); ``prices`` come from
    ``example_data/llm_candidates/default_llm.json`` when present (the card keys equal the score
    keys there). Task names are joined on the exact query text from
    ``example_data/query_data/default_query_{train,test}.jsonl`` (``"unknown"`` when absent).
    The given splits are kept as they are (note: some questions occur in both).
    """
    data_dir, root = _llmrouter_dirs(Path(path))
    train = _read_json_rows(data_dir / "train.json")
    test = _read_json_rows(data_dir / "test.json")
    if not train:
        raise ValueError(f"{data_dir}/train.json: no rows")
    models = tuple(sorted(train[0].get("scores", {})))
    quality = np.concatenate(
        [
            _llmrouter_quality(train, models, data_dir / "train.json"),
            _llmrouter_quality(test, models, data_dir / "test.json"),
        ]
    )
    train_q = [str(r["question"]) for r in train]
    test_q = [str(r["question"]) for r in test]
    return RoutingDataset(
        name="llmrouter",
        models=models,
        queries=tuple(train_q + test_q),
        quality=quality,
        cost=None,
        split=np.array(["train"] * len(train) + ["test"] * len(test), dtype=np.str_),
        task=_llmrouter_tasks(root, train_q, test_q),
        prices=_load_llm_prices(root, models),
    )
