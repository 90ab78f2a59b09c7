"""The bundle manifest (``manifest.json``): what a router bundle contains and means.

Written by ``converters`` (``routeiq-bundle train|convert``), read and verified by the service.
``outputs`` says what the router predicts: ``quality`` per model of ``models``, or
``ladder_quality`` per rung of ``ladder`` (router kind ``tier``; ``models`` then lists the
training models, whose ``model_costs`` price candidates of those names).

A bundle is a directory: ``manifest.json``, ``router.onnx``, and for text routers
``featurizer.onnx`` (+ ``tokenizer.json`` for MiniLM). ``files`` records the sha256 and size of
every other file; the bundle's own sha256 is the hash of ``manifest.json`` itself, so it changes
whenever any file does.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "CalibrationPoint",
    "FeaturizerSpec",
    "FileEntry",
    "Manifest",
    "PricePriorSpec",
    "RouterSpecOnnx",
]

SCHEMA_VERSION: Literal[1] = 1
FeaturizerKind = Literal["tfidf", "minilm", "static", "embedding"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class FeaturizerSpec(_Strict):
    """``kind`` names the runtime; ``dim`` is the feature width the router expects."""

    kind: FeaturizerKind
    dim: int = Field(ge=1)
    file: str | None = None
    tokenizer: str | None = None
    max_length: int = Field(256, ge=8, le=512)
    quantized: bool = False
    cost_ms_p99: float | None = Field(
        None,
        ge=0,
        description="measured when the bundle was built: p99 ms to featurize one held-out "
        "prompt on one core; the service sizes the router's time budget from it",
    )

    @model_validator(mode="after")
    def _files(self) -> FeaturizerSpec:
        if self.kind != "embedding" and self.file is None:
            raise ValueError(f"featurizer {self.kind} needs a 'file'")
        if self.kind in ("minilm", "static") and self.tokenizer is None:
            raise ValueError(f"featurizer {self.kind} needs a 'tokenizer' file")
        return self


class RouterSpecOnnx(_Strict):
    file: str = "router.onnx"
    input: str = "features"
    output: str = "quality"


class PricePriorSpec(_Strict):
    """A per-model router's cold-start prior for candidates it was not trained on (see
    :class:`router_service.strategies.learned.PricePrior`): mean training quality at
    ``prices`` (USD per 1M tokens, increasing), and the training models' overall mean."""

    prices: list[float] = Field(min_length=1)
    quality: list[float] = Field(min_length=1)
    mean_quality: float

    @model_validator(mode="after")
    def _shape(self) -> PricePriorSpec:
        if len(self.prices) != len(self.quality):
            raise ValueError("price_prior needs one quality per price")
        if any(p <= 0 for p in self.prices) or any(
            b <= a for a, b in itertools.pairwise(self.prices)
        ):
            raise ValueError("price_prior prices must be > 0 and increasing")
        return self


class CalibrationPoint(_Strict):
    cost_weight: float
    avg_quality: float
    avg_cost: float
    top_cost_share: float = Field(description="share of calls to the most expensive model")


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    version: str = Field(min_length=1, max_length=128)
    router_kind: str
    outputs: Literal["quality", "ladder_quality"] = Field(
        "quality",
        description="quality: one predicted quality per entry of models; ladder_quality: one "
        "per rung of ladder (router kind tier: routes between any priced models)",
    )
    ladder: list[float] | None = Field(
        None,
        description="ladder_quality only: each output's position on the candidates' log-price "
        "scale, from 0 (cheapest) to 1 (most expensive), increasing",
    )
    models: list[str] = Field(min_length=1)
    model_costs: dict[str, float] = Field(
        description="per model, in cost_unit; used when the request gives no prices"
    )
    cost_unit: Literal["usd_per_mtok", "usd_per_query"] = "usd_per_mtok"
    featurizer: FeaturizerSpec
    router: RouterSpecOnnx = RouterSpecOnnx()
    price_prior: PricePriorSpec | None = Field(
        None, description="per-model routers: quality prior for candidates priced per 1M tokens"
    )
    default_cost_weight: float = Field(0.0, ge=0)
    calibration: list[CalibrationPoint] = Field(default_factory=list)
    provenance: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileEntry]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must be unique")
        if (self.outputs == "ladder_quality") != (self.ladder is not None):
            raise ValueError("ladder is required for outputs ladder_quality, and only for it")
        if self.ladder is not None:
            rungs = self.ladder
            if (
                len(rungs) < 2
                or rungs[0] != 0.0
                or rungs[-1] != 1.0
                or any(b <= a for a, b in itertools.pairwise(rungs))
            ):
                raise ValueError(f"ladder must increase from 0 to 1 with 2+ rungs, got {rungs}")
        missing = [m for m in self.models if m not in self.model_costs]
        if missing:
            raise ValueError(f"model_costs lacks: {', '.join(missing)}")
        needed = [self.router.file]
        if self.featurizer.file:
            needed.append(self.featurizer.file)
        if self.featurizer.tokenizer:
            needed.append(self.featurizer.tokenizer)
        unlisted = [f for f in needed if f not in self.files]
        if unlisted:
            raise ValueError(f"files lacks: {', '.join(unlisted)}")
        for name in self.files:
            if "/" in name or "\\" in name or name.startswith(".") or name == "manifest.json":
                raise ValueError(f"file name {name!r} is not a plain file in the bundle")
        return self
