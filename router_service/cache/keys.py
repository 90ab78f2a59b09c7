"""Cache keys: hashes only, never prompt text.

A feature key depends on the featurizer's artifact and the normalized text; a decision key adds
the router's artifact, the policy and the candidate set, so a new bundle never serves an old
decision.
"""

from __future__ import annotations

import functools
import hashlib

from router_service.engine.types import Candidate, Policy, RouteInput

__all__ = ["decision_key", "feature_key", "input_digest", "text_hash"]


def text_hash(text: str) -> str:
    """sha256 of the text after whitespace normalisation (case is kept: it can matter)."""
    normalized = " ".join(text.split())
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def input_digest(req: RouteInput) -> str:
    """The part of a key that stands for the request's input: the text hash, or the rounded
    embedding values. Computed once per request and shared by its decision and feature keys."""
    if req.embedding is not None:
        return "emb:" + ",".join(f"{v:.6g}" for v in req.embedding)
    return text_hash(req.text())


def feature_key(featurizer_sha: str, req: RouteInput, digest: str | None = None) -> str:
    if req.embedding is not None:
        raise ValueError("client-supplied embeddings are not cached")
    return f"riq:f:{featurizer_sha[:16]}:{digest or text_hash(req.text())}"


def decision_key(router_sha: str, req: RouteInput, digest: str | None = None) -> str:
    parts = f"{_offer(req.policy, req.candidates)}\x1e{digest or input_digest(req)}"
    return f"riq:d:{router_sha[:16]}:{hashlib.sha256(parts.encode('utf-8')).hexdigest()}"


@functools.lru_cache(maxsize=1024)
def _offer(policy: Policy, candidates: tuple[Candidate, ...]) -> str:
    """The policy and the candidate set (in any order) as key text. Callers send the same few
    offers over and over, so each is spelled out once."""
    parts = [f"{policy.cost_weight!r}", f"{policy.min_quality!r}"]
    parts += sorted(
        f"{c.name}\x1f{c.input_price!r}\x1f{c.output_price!r}\x1f{c.unavailable}"
        for c in candidates
    )
    return "\x1e".join(parts)
