"""Conversion between the Router API messages and the engine's types. No validation here
beyond what the wire format itself decides (the engine validates)."""

from __future__ import annotations

from router_service.engine.types import (
    Candidate,
    CandidateScore,
    Decision,
    Outcome,
    Policy,
    RouteInput,
    Source,
)
from router_service.proto import pb

__all__ = ["decision_from_pb", "decision_to_pb", "outcome_from_pb", "route_from_pb"]


def _opt(msg: pb.Candidate, field: str) -> float | None:
    return float(getattr(msg, field)) if msg.HasField(field) else None  # type: ignore[arg-type]


def route_from_pb(msg: pb.RouteRequest) -> RouteInput:
    which = msg.WhichOneof("input")
    policy = Policy(
        cost_weight=msg.policy.cost_weight if msg.policy.HasField("cost_weight") else None,
        min_quality=msg.policy.min_quality if msg.policy.HasField("min_quality") else None,
    )
    return RouteInput(
        request_id=msg.request_id,
        candidates=tuple(
            Candidate(
                name=c.name,
                input_price=_opt(c, "input_price_per_mtok"),
                output_price=_opt(c, "output_price_per_mtok"),
                unavailable=c.unavailable,
            )
            for c in msg.candidates
        ),
        router=msg.router,
        policy=policy,
        prompt=msg.prompt if which == "prompt" else None,
        messages=tuple((t.role, t.content) for t in msg.messages.turns)
        if which == "messages"
        else None,
        embedding=tuple(msg.embedding.values) if which == "embedding" else None,
        labels=dict(msg.labels),
    )


def decision_to_pb(decision: Decision) -> pb.RouteResponse:
    return pb.RouteResponse(
        request_id=decision.request_id,
        model=decision.model,
        scores=[
            pb.CandidateScore(model=s.model, score=s.score, quality=s.quality, cost=s.cost)
            for s in decision.scores
        ],
        router=decision.router,
        router_version=decision.router_version,
        source=int(decision.source),  # type: ignore[arg-type]
        reason=decision.reason,
        latency_us=decision.latency_us,
    )


def decision_from_pb(msg: pb.RouteResponse) -> Decision:
    return Decision(
        request_id=msg.request_id,
        model=msg.model,
        scores=tuple(
            CandidateScore(
                model=s.model,
                score=s.score,
                quality=s.quality if s.HasField("quality") else None,
                cost=s.cost if s.HasField("cost") else None,
            )
            for s in msg.scores
        ),
        router=msg.router,
        router_version=msg.router_version,
        source=Source(msg.source),
        reason=msg.reason,
        latency_us=msg.latency_us,
    )


def outcome_from_pb(msg: pb.ReportOutcomeRequest) -> Outcome:
    return Outcome(
        request_id=msg.request_id,
        model=msg.model,
        quality=msg.quality if msg.HasField("quality") else None,
        latency_ms=msg.latency_ms,
        cost_usd=msg.cost_usd,
        failed=msg.failed,
        router=msg.router,
        labels=dict(msg.labels),
    )
