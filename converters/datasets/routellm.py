"""RouteLLM's evaluation data: correctness of Mixtral-8x7B (weak) and GPT-4 (strong) on MMLU or
GSM8K, contaminated prompts dropped."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from converters.datasets.core import (
    ROUTELLM_PRICES,
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    SPLITS,
    RoutingDataset,
    StrArray,
    hash_split,
    unit_hash,
)

logger = logging.getLogger(__name__)


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
        for wanted in SPLITS:
            if len(idx) >= 2 and not any(split[i] == wanted for i in idx):
                pick = min if wanted == "test" else max
                chosen = pick(idx, key=lambda i: unit_hash(prompts[i]))
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
