"""Cache keys: a structured, unambiguous hash of every input an entry depends on.

A key is ``riq:<kind>:<hash>`` where the hash covers a schema tag and each field with its
length in front, so no two different inputs give the same bytes to hash (nothing is joined
with separators that a caller's text could contain). Keys hold hashes only, never prompt text.

- A prediction (the router's quality per model) depends on the router's artifact, the tenant
  scope and the exact input: :func:`prediction_key`.
- A feature row depends on the featurizer's identity (its artifact and every setting that
  changes its output, such as a tokenizer and its truncation), the tenant scope and the exact
  input: :func:`feature_key`.

Policy, candidates (names, prices, order, ``unavailable``) and model health are deliberately
not in any key: they are applied to the cached prediction for each request, so a cached answer
is what a fresh one would be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["feature_key", "prediction_key", "text_digest", "vector_digest"]

_SCHEMA = b"routeiq-cache-v2"


def text_digest(text: str) -> bytes:
    """sha256 of the exact text a featurizer sees (no normalisation: the answer must not
    depend on a rewrite the featurizer does not make). Lone surrogates hash as themselves."""
    return b"t" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def vector_digest(values: Sequence[float]) -> bytes:
    """sha256 of an embedding as the float32 values the router sees (exact, not rounded)."""
    return b"v" + hashlib.sha256(np.asarray(values, dtype="<f4").tobytes()).digest()


def _key(kind: str, *fields: str | bytes) -> str:
    h = hashlib.blake2b(_SCHEMA + kind.encode(), digest_size=20)
    for field in fields:
        raw = field.encode("utf-8", "surrogatepass") if isinstance(field, str) else field
        h.update(len(raw).to_bytes(4, "little"))
        h.update(raw)
    return f"riq:{kind}:{h.hexdigest()}"


def prediction_key(router_sha: str, scope: str, digest: bytes) -> str:
    """The key of a router's prediction for one input (``digest``) within a tenant ``scope``."""
    return _key("p", router_sha, scope, digest)


def feature_key(featurizer_id: str, scope: str, digest: bytes) -> str:
    """The key of a featurizer's row for one input (``digest``) within a tenant ``scope``."""
    return _key("f", featurizer_id, scope, digest)
