"""The domain: plain data types of a routing decision, independent of the wire format. A leaf:
it imports nothing of ours, and every layer may import it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "TENANT_LABEL",
    "Candidate",
    "CandidateScore",
    "Choice",
    "Decision",
    "Outcome",
    "Policy",
    "QualityBasis",
    "RouteInput",
    "Source",
]


TENANT_LABEL = "tenant"
"""The label that names a request's tenant: caches and model health are scoped by it."""


class Source(enum.IntEnum):
    """Where a decision came from; values match the proto enum."""

    MODEL = 1
    CACHE = 2
    STATIC = 3
    FALLBACK = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model the caller accepts. Prices are USD per million tokens, ``None`` when unknown."""

    name: str
    input_price: float | None = None
    output_price: float | None = None
    unavailable: bool = False
    price: float | None = field(init=False, compare=False, repr=False)
    """Mean of the known prices (USD per 1M tokens), ``None`` when neither is known; computed
    once (offers are reused across requests, and every policy reads it per candidate)."""

    def __post_init__(self) -> None:
        known = [p for p in (self.input_price, self.output_price) if p is not None]
        object.__setattr__(self, "price", sum(known) / len(known) if known else None)


@dataclass(frozen=True, slots=True)
class Policy:
    """``cost_weight`` is λ (quality per unit of cost; ``None`` = the router's default);
    ``min_quality`` is on the 0..1 scale."""

    cost_weight: float | None = None
    min_quality: float | None = None


@dataclass(frozen=True, slots=True)
class RouteInput:
    """One validated routing request. Exactly one of prompt, messages, embedding is set."""

    request_id: str
    candidates: tuple[Candidate, ...]
    router: str = ""
    policy: Policy = Policy()
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None
    embedding: tuple[float, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        """The tenant scope of this request (``""`` without a ``tenant`` label)."""
        return self.labels.get(TENANT_LABEL, "")

    def text(self) -> str:
        """The text a featurizer sees: the prompt, or the chat turns joined by newlines."""
        if self.prompt is not None:
            return self.prompt
        if self.messages is not None:
            return "\n".join(content for _, content in self.messages)
        return ""


class QualityBasis(enum.IntEnum):
    """What a candidate's predicted quality rests on; values match the proto enum."""

    NONE = 0
    PREDICTED = 1
    PRICE_LADDER = 2
    PRICE_PRIOR = 3


class CandidateScore(NamedTuple):
    """One candidate's line of an answer: the value the strategy maximised (higher is better),
    and the predicted quality (and what it rests on) and the cost it used, when known. A named
    tuple: every decision builds one per candidate, and a frozen dataclass costs three times as
    much to make."""

    model: str
    score: float
    quality: float | None = None
    cost: float | None = None
    basis: QualityBasis = QualityBasis.NONE


@dataclass(frozen=True, slots=True)
class Choice:
    """What a strategy returns: the model, a score per candidate (request order), and why."""

    model: str
    scores: tuple[CandidateScore, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing answer: the chosen model, one score per candidate in request order, and why."""

    request_id: str
    model: str
    scores: tuple[CandidateScore, ...]
    router: str
    router_version: str
    source: Source
    reason: str
    latency_us: int
    propensity: float = 1.0
    """The probability the router had of choosing ``model`` (below 1 only when it explores)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a routed request went, as reported by the caller."""

    request_id: str
    model: str
    quality: float | None
    latency_ms: float
    cost_usd: float
    failed: bool
    router: str
    labels: Mapping[str, str]

    @property
    def tenant(self) -> str:
        """The tenant scope whose model health this report may change."""
        return self.labels.get(TENANT_LABEL, "")
