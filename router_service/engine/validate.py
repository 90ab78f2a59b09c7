"""Request validation: every rejection says what is wrong, never echoing prompt text."""

from __future__ import annotations

import math
from collections.abc import Mapping

from router_service.config import LimitsSettings
from router_service.domain import Outcome, RouteInput
from router_service.errors import InvalidRequest

__all__ = ["validate_outcome", "validate_route"]


def _check_input(req: RouteInput, limits: LimitsSettings) -> None:
    set_inputs = sum(x is not None for x in (req.prompt, req.messages, req.embedding))
    if set_inputs == 0:
        raise InvalidRequest("no input: set one of 'prompt', 'messages' or 'embedding'")
    if req.prompt is not None:
        if not req.prompt.strip():
            raise InvalidRequest("empty prompt: 'prompt' has no non-whitespace text")
        if len(req.prompt) > limits.max_prompt_chars:
            raise InvalidRequest(
                f"prompt is {len(req.prompt)} characters, over the limit of "
                f"{limits.max_prompt_chars}"
            )
    elif req.messages is not None:
        _check_messages(req.messages, limits)
    elif req.embedding is not None:
        _check_embedding(req.embedding, limits)


def _check_messages(messages: tuple[tuple[str, str], ...], limits: LimitsSettings) -> None:
    if not messages:
        raise InvalidRequest("'messages' has no turns")
    if len(messages) > limits.max_messages:
        raise InvalidRequest(
            f"'messages' has {len(messages)} turns, over the limit of {limits.max_messages}"
        )
    total = sum(len(content) for _, content in messages)
    if total > limits.max_prompt_chars:
        raise InvalidRequest(
            f"messages are {total} characters in all, over the limit of {limits.max_prompt_chars}"
        )
    if not any(content.strip() for _, content in messages):
        raise InvalidRequest("empty prompt: no turn in 'messages' has any text")


def _check_embedding(embedding: tuple[float, ...], limits: LimitsSettings) -> None:
    if not embedding:
        raise InvalidRequest("'embedding' has no values")
    if len(embedding) > limits.max_embedding_dim:
        raise InvalidRequest(
            f"'embedding' has {len(embedding)} values, over the limit of {limits.max_embedding_dim}"
        )
    for i, value in enumerate(embedding):
        if not math.isfinite(value):
            raise InvalidRequest(f"embedding[{i}] is {value}: values must be finite")


def _check_candidates(req: RouteInput, limits: LimitsSettings) -> None:
    if not req.candidates:
        raise InvalidRequest("no candidates: give at least one model in 'candidates'")
    if len(req.candidates) > limits.max_candidates:
        raise InvalidRequest(
            f"{len(req.candidates)} candidates, over the limit of {limits.max_candidates}"
        )
    seen: set[str] = set()
    for i, cand in enumerate(req.candidates):
        if not cand.name.strip():
            raise InvalidRequest(f"candidates[{i}] has an empty name")
        if len(cand.name) > limits.max_name_chars:
            raise InvalidRequest(
                f"candidates[{i}] name is over the limit of {limits.max_name_chars} characters"
            )
        if cand.name in seen:
            raise InvalidRequest(f"candidate {cand.name!r} is listed twice")
        seen.add(cand.name)
        for field, price in (("input", cand.input_price), ("output", cand.output_price)):
            if price is not None and not (math.isfinite(price) and price >= 0):
                raise InvalidRequest(
                    f"candidates[{i}] {field}_price_per_mtok is {price}: must be finite and >= 0"
                )


def _check_policy_and_labels(req: RouteInput, limits: LimitsSettings) -> None:
    weight = req.policy.cost_weight
    if weight is not None and not (math.isfinite(weight) and weight >= 0):
        raise InvalidRequest(f"policy.cost_weight is {weight}: must be finite and >= 0")
    quality = req.policy.min_quality
    if quality is not None and not (0.0 <= quality <= 1.0):
        raise InvalidRequest(f"policy.min_quality is {quality}: must be between 0 and 1")
    _check_labels(req.labels, limits)
    _check_name("request_id", req.request_id, limits)


def _check_labels(labels: Mapping[str, str], limits: LimitsSettings) -> None:
    if len(labels) > limits.max_labels:
        raise InvalidRequest(f"{len(labels)} labels, over the limit of {limits.max_labels}")
    for key, value in labels.items():
        if len(key) > limits.max_label_chars or len(value) > limits.max_label_chars:
            raise InvalidRequest(
                f"label {key[:64]!r} is over the limit of {limits.max_label_chars} characters"
            )


def _check_name(field: str, value: str, limits: LimitsSettings) -> None:
    if len(value) > limits.max_name_chars:
        raise InvalidRequest(f"{field} is over the limit of {limits.max_name_chars} characters")


def validate_route(req: RouteInput, limits: LimitsSettings) -> None:
    """Raise :class:`InvalidRequest` naming the first problem found in ``req``."""
    _check_candidates(req, limits)
    _check_input(req, limits)
    _check_policy_and_labels(req, limits)


def validate_outcome(outcome: Outcome, limits: LimitsSettings) -> None:
    """Raise :class:`InvalidRequest` naming the first problem found in an outcome report.
    Every field is bounded by the same limits as a route request's."""
    if not outcome.request_id:
        raise InvalidRequest("outcome needs the 'request_id' of the routed request")
    if not outcome.model:
        raise InvalidRequest("outcome needs the 'model' that answered")
    for field, value in (
        ("request_id", outcome.request_id),
        ("model", outcome.model),
        ("router", outcome.router),
    ):
        _check_name(field, value, limits)
    _check_labels(outcome.labels, limits)
    if outcome.quality is not None and not 0.0 <= outcome.quality <= 1.0:
        raise InvalidRequest(f"quality is {outcome.quality}: must be between 0 and 1")
    if not (math.isfinite(outcome.latency_ms) and outcome.latency_ms >= 0):
        raise InvalidRequest(f"latency_ms is {outcome.latency_ms}: must be finite and >= 0")
    if not (math.isfinite(outcome.cost_usd) and outcome.cost_usd >= 0):
        raise InvalidRequest(f"cost_usd is {outcome.cost_usd}: must be finite and >= 0")
