"""Plain data types of a routing decision, independent of the wire format."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Candidate",
    "CandidateScore",
    "Choice",
    "Decision",
    "Outcome",
    "Policy",
    "RouteInput",
    "Source",
]


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

    @property
    def price(self) -> float | None:
        """Mean of the known prices (USD per 1M tokens), ``None`` when neither is known."""
        known = [p for p in (self.input_price, self.output_price) if p is not None]
        return sum(known) / len(known) if known else None


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

    def text(self) -> str:
        """The text a featurizer sees: the prompt, or the chat turns joined by newlines."""
        if self.prompt is not None:
            return self.prompt
        if self.messages is not None:
            return "\n".join(content for _, content in self.messages)
        return ""


@dataclass(frozen=True, slots=True)
class CandidateScore:
    model: str
    score: float
    quality: float | None = None
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """What a strategy returns: the model, a score per candidate (request order), and why."""

    model: str
    scores: tuple[CandidateScore, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing answer. ``encoded`` is set on decisions that the cache keeps: their cache
    encoding (see :mod:`router_service.cache.codec`), which covers every field but
    ``request_id``, ``source`` and ``latency_us`` — so a cache hit can be answered without
    rebuilding the message."""

    request_id: str
    model: str
    scores: tuple[CandidateScore, ...]
    router: str
    router_version: str
    source: Source
    reason: str
    latency_us: int
    encoded: bytes = field(default=b"", compare=False, repr=False)


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
