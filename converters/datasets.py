"""Routing datasets in one in-memory form, and loaders for the formats the project reads.

A routing dataset is a table of queries × candidate models holding the measured quality of each
model's answer (0..1), optionally the measured cost of each call (USD per query), a train/test
split, an optional task label per query and, when known, each model's list prices
(USD per 1M input / output tokens).

Loaders (all take a path; nothing is copied into the project):

* :func:`load_llmrouter` — ulab-uiuc/LLMRouter ``dcrouter_preprocessed`` (9 models);
* :func:`load_routellm` — lm-sys/RouteLLM MMLU or GSM8K correctness of Mixtral vs GPT-4;
* :func:`load_wide` — the generic "wide" CSV/JSONL format described in its docstring;
* :func:`load` — dispatch on a format name.

Hash splits (:func:`hash_split`) are deterministic: ``sha256(key)`` read as a number in [0, 1)
below the test fraction puts a row into the test split, on every machine and Python version.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FORMATS",
    "ROUTELLM_PRICES",
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "SHIPPED_DATA",
    "RoutingDataset",
    "hash_split",
    "load",
    "load_llmrouter",
    "load_routellm",
    "load_wide",
    "write_wide",
]

logger = logging.getLogger(__name__)

SHIPPED_DATA = Path(__file__).resolve().parent / "data"
"""The routing datasets shipped with the project: ``llmrouter/`` and ``routellm/`` (see its
README for their sources and licences)."""

FloatArray = npt.NDArray[np.float32]
StrArray = npt.NDArray[np.str_]

FORMATS = ("llmrouter", "routellm", "routellm-gsm8k", "wide")
DEFAULT_TEST_FRACTION = 0.2

ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"
#: Public list prices, USD per 1M (input, output) tokens, as used for cost weighting.
#: Mixtral-8x7B-Instruct: the usual hosted price (~$0.60/1M in and out, e.g. Together/Anyscale
#: at the time of the RouteLLM paper); gpt-4-1106-preview: OpenAI's $10 in / $30 out per 1M.
ROUTELLM_PRICES: dict[str, tuple[float, float]] = {
    ROUTELLM_WEAK: (0.6, 0.6),
    ROUTELLM_STRONG: (10.0, 30.0),
}

QUALITY_SUFFIX = "__quality"
COST_SUFFIX = "__cost_usd"
_SPLITS = ("train", "test")


@dataclass(frozen=True, eq=False)
class RoutingDataset:
    """Queries × models table of measured quality (and optionally cost).

    Contract (checked on construction, :class:`ValueError` otherwise):

    * ``quality``: float32 ``[n, m]``, finite, within [0, 1]; column ``j`` is ``models[j]``;
    * ``cost``: ``None`` or float32 ``[n, m]``, finite, >= 0, USD per query;
    * ``split``: ``[n]`` strings, each ``"train"`` or ``"test"``;
    * ``task``: ``None`` or ``n`` task names;
    * ``prices``: ``None`` or ``model -> (input, output)`` USD per 1M tokens (a subset of
      ``models`` when only some prices are known).
    """

    name: str
    models: tuple[str, ...]
    queries: tuple[str, ...]
    quality: FloatArray
    cost: FloatArray | None
    split: StrArray
    task: tuple[str, ...] | None = None
    prices: dict[str, tuple[float, float]] | None = field(default=None)

    def __post_init__(self) -> None:
        n, m = len(self.queries), len(self.models)
        if m == 0:
            raise ValueError(f"{self.name}: no models")
        if len(set(self.models)) != m:
            raise ValueError(f"{self.name}: duplicate model names in {self.models}")
        _check_matrix(self.name, "quality", self.quality, (n, m), upper=1.0)
        if self.cost is not None:
            _check_matrix(self.name, "cost", self.cost, (n, m), upper=None)
        if self.split.shape != (n,):
            raise ValueError(f"{self.name}: split shape {self.split.shape} != ({n},)")
        bad = sorted(set(self.split.tolist()) - set(_SPLITS))
        if bad:
            raise ValueError(f"{self.name}: split values must be train/test, got {bad}")
        if self.task is not None and len(self.task) != n:
            raise ValueError(f"{self.name}: {len(self.task)} task names for {n} queries")

    @property
    def n_queries(self) -> int:
        """Number of queries (rows)."""
        return len(self.queries)

    @property
    def n_models(self) -> int:
        """Number of models (columns)."""
        return len(self.models)

    def subset(self, mask: npt.NDArray[np.bool_], suffix: str = "") -> RoutingDataset:
        """Rows where ``mask`` is true, in the same order; models and prices unchanged."""
        idx = np.flatnonzero(mask)
        return RoutingDataset(
            name=self.name + suffix,
            models=self.models,
            queries=tuple(self.queries[i] for i in idx),
            quality=self.quality[idx],
            cost=None if self.cost is None else self.cost[idx],
            split=self.split[idx],
            task=None if self.task is None else tuple(self.task[i] for i in idx),
            prices=self.prices,
        )

    def train(self) -> RoutingDataset:
        """The ``split == "train"`` rows."""
        return self.subset(self.split == "train", ":train")

    def test(self) -> RoutingDataset:
        """The ``split == "test"`` rows."""
        return self.subset(self.split == "test", ":test")

    def price_vector(self) -> FloatArray | None:
        """Blended price per model, USD per 1M tokens: mean of input and output price.

        ``None`` unless every model has a price. Used as a relative per-call cost when the
        dataset has no measured per-query cost.
        """
        if self.prices is None or any(m not in self.prices for m in self.models):
            return None
        return np.array([sum(self.prices[m]) / 2.0 for m in self.models], dtype=np.float32)


def _check_matrix(
    name: str, what: str, x: FloatArray, shape: tuple[int, int], upper: float | None
) -> None:
    if x.shape != shape:
        raise ValueError(f"{name}: {what} shape {x.shape} != {shape}")
    if x.dtype != np.float32:
        raise ValueError(f"{name}: {what} dtype {x.dtype} != float32")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: {what} has non-finite values")
    if x.size and (x.min() < 0.0 or (upper is not None and x.max() > upper)):
        bound = f"[0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"{name}: {what} values must be {bound}")


def _unit_hash(key: str) -> float:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(keys: Sequence[str], test_fraction: float = DEFAULT_TEST_FRACTION) -> StrArray:
    """Deterministic split: ``"test"`` where ``sha256(key)`` as a fraction of 2^64 is below
    ``test_fraction``, else ``"train"``. Equal keys always land in the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    return np.array(
        ["test" if _unit_hash(k) < test_fraction else "train" for k in keys], dtype=np.str_
    )


# --------------------------------------------------------------------------- LLMRouter


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
            value = _parse_unit(scores[model], f"{src}: row {i} model {model!r}")
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


# --------------------------------------------------------------------------- RouteLLM


def _routellm_dir(path: Path, benchmark: str) -> Path:
    if benchmark not in ("mmlu", "gsm8k"):
        raise ValueError(f"benchmark must be 'mmlu' or 'gsm8k', got {benchmark!r}")
    for candidate in (path / benchmark, path):
        if (candidate / "contaminated_prompts.jsonl").is_file() and candidate.name == benchmark:
            return candidate
    raise ValueError(f"{path}: no {benchmark}/ directory with contaminated_prompts.jsonl")


def _contaminated(bench_dir: Path) -> set[str]:
    out: set[str] = set()
    with (bench_dir / "contaminated_prompts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.add(str(json.loads(line)["eval_prompt"]))
    return out


def _parse_bool(value: str, where: str) -> float:
    text = value.strip().lower()
    if text in ("true", "1", "1.0"):
        return 1.0
    if text in ("false", "0", "0.0"):
        return 0.0
    raise ValueError(f"{where}: expected True/False, got {value!r}")


def _routellm_csv_rows(path: Path, task: str) -> Iterator[tuple[str, float, float, str]]:
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("prompt", ROUTELLM_WEAK, ROUTELLM_STRONG):
            if col not in (reader.fieldnames or []):
                raise ValueError(f"{path}: missing column {col!r}")
        for line_no, row in enumerate(reader, start=2):
            where = f"{path}: record {line_no - 1}"
            weak = _parse_bool(row[ROUTELLM_WEAK], f"{where} column {ROUTELLM_WEAK!r}")
            strong = _parse_bool(row[ROUTELLM_STRONG], f"{where} column {ROUTELLM_STRONG!r}")
            yield row["prompt"], weak, strong, task


def _routellm_files(bench_dir: Path, benchmark: str) -> list[tuple[Path, str]]:
    if benchmark == "gsm8k":
        return [(bench_dir / "gsm8k_responses.csv", "gsm8k")]
    files = sorted((bench_dir / "responses").glob("mmlu_*.csv"))
    if not files:
        raise ValueError(f"{bench_dir}/responses: no mmlu_*.csv files")
    return [(f, f.stem.removeprefix("mmlu_")) for f in files]


def _ensure_tasks_in_both(split: StrArray, tasks: Sequence[str], prompts: Sequence[str]) -> None:
    """Move the extreme-hash row of a task into the split the task would otherwise lack."""
    for task in sorted(set(tasks)):
        idx = [i for i, t in enumerate(tasks) if t == task]
        for wanted in _SPLITS:
            if len(idx) >= 2 and not any(split[i] == wanted for i in idx):
                pick = min if wanted == "test" else max
                chosen = pick(idx, key=lambda i: _unit_hash(prompts[i]))
                split[chosen] = wanted
                logger.info("task %s: moved one row into %s", task, wanted)


def load_routellm(path: str | Path, benchmark: str = "mmlu") -> RoutingDataset:
    """Load RouteLLM's MMLU (57 subject files) or GSM8K correctness table.

    ``path`` is the ``routellm`` directory or the benchmark directory itself. Models, in column
    order: ``(ROUTELLM_WEAK, ROUTELLM_STRONG)`` = Mixtral-8x7B-Instruct (weak) and
    gpt-4-1106-preview (strong); quality is 1.0 when the answer was correct, else 0.0. Prompts
    listed as ``eval_prompt`` in ``contaminated_prompts.jsonl`` are dropped (RouteLLM does the
    same). Task is the MMLU subject (file name) or ``"gsm8k"``.

    Split (ours; RouteLLM itself trains elsewhere and evaluates on everything): a row is
    ``"test"`` when ``sha256(prompt)`` falls in the lowest 20 % (:func:`hash_split`), so a
    repeated prompt always lands in one split; for MMLU, a subject that would lack a split gets
    its lowest-hash row moved to test (or highest-hash row moved to train) — with 100+ rows
    per subject this never triggers on the real data, but it is guaranteed.
    Cost is ``None``; ``prices`` are :data:`ROUTELLM_PRICES`.
    """
    bench_dir = _routellm_dir(Path(path), benchmark)
    dropped = _contaminated(bench_dir)
    rows = [
        r
        for f, task in _routellm_files(bench_dir, benchmark)
        for r in _routellm_csv_rows(f, task)
        if r[0] not in dropped
    ]
    logger.info(
        "%s: %d rows after dropping %d contaminated prompts", benchmark, len(rows), len(dropped)
    )
    prompts = [r[0] for r in rows]
    tasks = [r[3] for r in rows]
    split = hash_split(prompts)
    if benchmark == "mmlu":
        _ensure_tasks_in_both(split, tasks, prompts)
    return RoutingDataset(
        name=f"routellm-{benchmark}",
        models=(ROUTELLM_WEAK, ROUTELLM_STRONG),
        queries=tuple(prompts),
        quality=np.array([[r[1], r[2]] for r in rows], dtype=np.float32).reshape(-1, 2),
        cost=None,
        split=split,
        task=tuple(tasks),
        prices=dict(ROUTELLM_PRICES),
    )


# --------------------------------------------------------------------------- wide format


def _parse_unit(value: object, where: str) -> float:
    """A quality value: a number in [0, 1], or a boolean (JSON ``true`` / text ``True``)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return 1.0 if value.strip().lower() == "true" else 0.0
    x = _parse_float(value, where)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{where}: quality {x} is outside [0, 1]")
    return x


def _parse_float(value: object, where: str) -> float:
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: missing or non-numeric value {value!r}")
    if not isinstance(value, int | float | str):
        raise ValueError(f"{where}: non-numeric value {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{where}: non-numeric value {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: non-finite value {value!r}")
    return x


def _wide_models(columns: Iterable[str], src: Path) -> tuple[tuple[str, ...], bool]:
    """Model names from ``<model>__quality`` columns, and whether cost columns are present."""
    cols = list(columns)
    if "query" not in cols:
        raise ValueError(f"{src}: missing required column 'query' (columns: {cols})")
    models = tuple(c[: -len(QUALITY_SUFFIX)] for c in cols if c.endswith(QUALITY_SUFFIX))
    if not models or any(not m for m in models):
        raise ValueError(f"{src}: no '<model>{QUALITY_SUFFIX}' columns (columns: {cols})")
    costs = {c[: -len(COST_SUFFIX)] for c in cols if c.endswith(COST_SUFFIX)}
    orphan = sorted(costs - set(models))
    if orphan:
        raise ValueError(f"{src}: cost columns without a quality column: {orphan}")
    if costs and costs != set(models):
        missing = sorted(set(models) - costs)
        raise ValueError(
            f"{src}: cost columns must exist for all models or none; missing {missing}"
        )
    return models, bool(costs)


def _read_wide_records(src: Path) -> tuple[list[str], list[tuple[int, Mapping[str, object]]]]:
    """Return the column names and ``(line_number, record)`` pairs of a CSV or JSONL file."""
    if src.suffix.lower() in (".jsonl", ".ndjson"):
        records: list[tuple[int, Mapping[str, object]]] = []
        columns: dict[str, None] = {}
        with src.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{src}: line {line_no}: invalid JSON ({exc.msg})") from None
                if not isinstance(rec, dict):
                    raise ValueError(f"{src}: line {line_no}: expected a JSON object")
                columns.update(dict.fromkeys(rec))
                records.append((line_no, rec))
        return list(columns), records
    with src.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows: list[tuple[int, Mapping[str, object]]] = [
            (i, dict(r)) for i, r in enumerate(reader, start=2)
        ]
        return list(reader.fieldnames or []), rows


@dataclass
class _WideColumns:
    queries: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    quality: list[list[float]] = field(default_factory=list)
    cost: list[list[float]] = field(default_factory=list)


def _wide_row(
    cols: _WideColumns,
    line_no: int,
    rec: Mapping[str, object],
    models: tuple[str, ...],
    *,
    has_cost: bool,
    src: Path,
) -> None:
    where = f"{src}: line {line_no}"
    query = rec.get("query")
    if not isinstance(query, str) or not query:
        raise ValueError(f"{where}: column 'query' is missing or empty")
    split = str(rec.get("split") or "").strip().lower()
    if split not in ("", *_SPLITS):
        raise ValueError(f"{where}: column 'split' must be train/test or empty, got {split!r}")
    cols.queries.append(query)
    raw_id = rec.get("id")
    cols.keys.append(query if raw_id is None or raw_id == "" else str(raw_id))
    cols.splits.append(split)
    cols.tasks.append(str(rec.get("task") or "") or "unknown")
    cols.quality.append(
        [
            _parse_unit(rec.get(m + QUALITY_SUFFIX), f"{where} column {m + QUALITY_SUFFIX!r}")
            for m in models
        ]
    )
    if has_cost:
        costs = [
            _parse_float(rec.get(m + COST_SUFFIX), f"{where} column {m + COST_SUFFIX!r}")
            for m in models
        ]
        if min(costs) < 0:
            raise ValueError(f"{where}: negative cost in {costs}")
        cols.cost.append(costs)


def load_wide(path: str | Path, test_fraction: float = DEFAULT_TEST_FRACTION) -> RoutingDataset:
    """Load the generic "wide" format: a ``.csv`` file, or ``.jsonl``/``.ndjson`` objects.

    Columns: ``query`` (required, non-empty), optional ``id``, optional ``split``
    (``train``/``test``; empty or absent → :func:`hash_split` of ``id``, or of ``query`` when
    there is no id), optional ``task`` (empty → ``"unknown"``), and per model
    ``<model>__quality`` (required: a number in 0..1, or ``true``/``false`` for correctness) and
    optionally ``<model>__cost_usd`` (>= 0, USD per query; for all models or none). The model
    name is everything before the suffix and may contain ``/``. Models keep the column order
    of the file.

    Raises :class:`ValueError` naming the file, line and column of the first problem.
    """
    src = Path(path)
    columns, records = _read_wide_records(src)
    models, has_cost = _wide_models(columns, src)
    if not records:
        raise ValueError(f"{src}: no data rows")
    cols = _WideColumns()
    for line_no, rec in records:
        _wide_row(cols, line_no, rec, models, has_cost=has_cost, src=src)
    hashed = hash_split(cols.keys, test_fraction)
    split = np.array([s or h for s, h in zip(cols.splits, hashed, strict=True)], dtype=np.str_)
    return RoutingDataset(
        name=src.stem,
        models=models,
        queries=tuple(cols.queries),
        quality=np.array(cols.quality, dtype=np.float32).reshape(-1, len(models)),
        cost=np.array(cols.cost, dtype=np.float32).reshape(-1, len(models)) if has_cost else None,
        split=split,
        task=tuple(cols.tasks) if "task" in columns else None,
        prices=None,
    )


def write_wide(dataset: RoutingDataset, path: str | Path) -> Path:
    """Write ``dataset`` in the wide format (CSV, or JSONL when the suffix is ``.jsonl``).

    Round-trips through :func:`load_wide` except for ``prices`` (not part of the format).
    """
    dst = Path(path)
    header = ["id", "query", "split", "task"]
    header += [m + QUALITY_SUFFIX for m in dataset.models]
    if dataset.cost is not None:
        header += [m + COST_SUFFIX for m in dataset.models]
    records = [_wide_record(dataset, i, header) for i in range(dataset.n_queries)]
    if dst.suffix.lower() in (".jsonl", ".ndjson"):
        with dst.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        with dst.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(records)
    return dst


def _wide_record(ds: RoutingDataset, i: int, header: list[str]) -> dict[str, object]:
    values: list[object] = [str(i), ds.queries[i], str(ds.split[i])]
    values.append(ds.task[i] if ds.task is not None else "")
    values += [float(v) for v in ds.quality[i]]
    if ds.cost is not None:
        values += [float(v) for v in ds.cost[i]]
    return dict(zip(header, values, strict=True))


# --------------------------------------------------------------------------- dispatch

_LOADERS: dict[str, Callable[[Path], RoutingDataset]] = {
    "llmrouter": load_llmrouter,
    "routellm": lambda p: load_routellm(p, "mmlu"),
    "routellm-mmlu": lambda p: load_routellm(p, "mmlu"),
    "routellm-gsm8k": lambda p: load_routellm(p, "gsm8k"),
    "wide": load_wide,
}


def load(path: str | Path, fmt: str) -> RoutingDataset:
    """Load ``path`` in format ``fmt``: one of :data:`FORMATS` (``"routellm"`` is MMLU;
    ``"routellm-mmlu"`` is accepted as an alias)."""
    loader = _LOADERS.get(fmt)
    if loader is None:
        raise ValueError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")
    return loader(Path(path))
