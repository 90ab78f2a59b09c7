"""Routing datasets in one in-memory form, and loaders for the formats the project reads.

A routing dataset is a table of queries × candidate models holding the measured quality of each
model's answer (0..1), optionally the measured cost of each call (USD per query), a train/test
split, an optional task label per query and, when known, each model's list prices
(USD per 1M input / output tokens).

Loaders (all take a path; :data:`SHIPPED_DATA` holds the datasets shipped with the project):

* :func:`load_llmrouter` — ulab-uiuc/LLMRouter ``dcrouter_preprocessed`` (9 models);
* :func:`load_routellm` — lm-sys/RouteLLM MMLU or GSM8K correctness of Mixtral vs GPT-4;
* :func:`load_wide` — the generic "wide" CSV/JSONL format described in its docstring;
* :func:`load` — dispatch on a format name.

Hash splits (:func:`hash_split`) are deterministic: ``sha256(key)`` read as a number in [0, 1)
below the test fraction puts a row into the test split, on every machine and Python version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from converters.datasets.core import (
    ROUTELLM_PRICES,
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    RoutingDataset,
    hash_split,
)
from converters.datasets.llmrouter import load_llmrouter
from converters.datasets.routellm import load_routellm
from converters.datasets.wide import load_wide, write_wide

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

SHIPPED_DATA = Path(__file__).resolve().parents[1] / "data"
"""The routing datasets shipped with the project: ``llmrouter/`` and ``routellm/`` (see its
README for their sources and licences)."""

FORMATS = ("llmrouter", "routellm", "routellm-gsm8k", "wide")


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
