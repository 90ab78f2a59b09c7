"""The generic "wide" format for your own logs: a CSV or JSONL file with a row per query and
columns per model (see :func:`load_wide`)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters.datasets.core import (
    COST_SUFFIX,
    DEFAULT_TEST_FRACTION,
    QUALITY_SUFFIX,
    SPLITS,
    RoutingDataset,
    hash_split,
    parse_float,
    parse_unit,
)

logger = logging.getLogger(__name__)


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
    if split not in ("", *SPLITS):
        raise ValueError(f"{where}: column 'split' must be train/test or empty, got {split!r}")
    cols.queries.append(query)
    raw_id = rec.get("id")
    cols.keys.append(query if raw_id is None or raw_id == "" else str(raw_id))
    cols.splits.append(split)
    cols.tasks.append(str(rec.get("task") or "") or "unknown")
    cols.quality.append(
        [
            parse_unit(rec.get(m + QUALITY_SUFFIX), f"{where} column {m + QUALITY_SUFFIX!r}")
            for m in models
        ]
    )
    if has_cost:
        costs = [
            parse_float(rec.get(m + COST_SUFFIX), f"{where} column {m + COST_SUFFIX!r}")
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
