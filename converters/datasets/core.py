"""Routing datasets in one in-memory form (:class:`RoutingDataset`), deterministic hash splits
and the constants the loaders share."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
StrArray = npt.NDArray[np.str_]

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
SPLITS = ("train", "test")


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
        check_matrix(self.name, "quality", self.quality, (n, m), upper=1.0)
        if self.cost is not None:
            check_matrix(self.name, "cost", self.cost, (n, m), upper=None)
        if self.split.shape != (n,):
            raise ValueError(f"{self.name}: split shape {self.split.shape} != ({n},)")
        bad = sorted(set(self.split.tolist()) - set(SPLITS))
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


def check_matrix(
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


def unit_hash(key: str) -> float:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(keys: Sequence[str], test_fraction: float = DEFAULT_TEST_FRACTION) -> StrArray:
    """Deterministic split: ``"test"`` where ``sha256(key)`` as a fraction of 2^64 is below
    ``test_fraction``, else ``"train"``. Equal keys always land in the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    return np.array(
        ["test" if unit_hash(k) < test_fraction else "train" for k in keys], dtype=np.str_
    )


def parse_unit(value: object, where: str) -> float:
    """A quality value: a number in [0, 1], or a boolean (JSON ``true`` / text ``True``)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return 1.0 if value.strip().lower() == "true" else 0.0
    x = parse_float(value, where)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{where}: quality {x} is outside [0, 1]")
    return x


def parse_float(value: object, where: str) -> float:
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
