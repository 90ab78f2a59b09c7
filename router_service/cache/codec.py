"""Compact binary values: a decision is its serialized RouteResponse (request id and latency
cleared), features are little-endian float32 bytes of one row. Decoded decisions carry their
encoding (``Decision.encoded``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from router_service.engine.types import Decision
from router_service.proto import pb
from router_service.surfaces.convert import decision_from_pb, decision_to_pb

__all__ = ["decode_decision", "decode_features", "encode_decision", "encode_features"]


def encode_decision(decision: Decision) -> bytes:
    bare = dataclasses.replace(decision, request_id="", latency_us=0, encoded=b"")
    return decision_to_pb(bare).SerializeToString()


def decode_decision(raw: bytes) -> Decision:
    """Raises ``ValueError`` when ``raw`` is not a serialized decision."""
    msg = pb.RouteResponse()
    try:
        msg.ParseFromString(raw)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ValueError("not a serialized decision") from exc
    if not msg.model:
        raise ValueError("cached decision names no model")
    return dataclasses.replace(decision_from_pb(msg), encoded=raw)


def encode_features(features: npt.NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(features, dtype="<f4").tobytes()


def decode_features(raw: bytes) -> npt.NDArray[np.float32]:
    if len(raw) == 0 or len(raw) % 4:
        raise ValueError(f"feature value of {len(raw)} bytes is not float32 data")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(1, -1)
