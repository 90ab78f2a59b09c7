"""ONNX conventions shared by every graph the offline tools write, and the helpers that read
them back: one opset, one IR version, the ``(domain, op_type)`` pairs of a graph, and a session
built exactly as the service builds its own (:func:`router_service.onnx_session.make_session`),
so that parity checks run what the service will run."""

from __future__ import annotations

from typing import Any

import onnx

from router_service.onnx_session import make_session

__all__ = ["IR_VERSION", "ML_OPSET", "OPSET", "onnx_op_types", "ort_session"]

OPSET = 17
"""``ai.onnx`` opset: the first with LayerNormalization; well supported by onnxruntime."""
ML_OPSET = 3
"""``ai.onnx.ml`` opset."""
IR_VERSION = 8
"""The IR version that introduced opset 17; loadable by older runtimes."""


def onnx_op_types(model: onnx.ModelProto) -> set[tuple[str, str]]:
    """The ``(domain, op_type)`` pairs of the main graph; domain ``""`` is ``ai.onnx``."""
    return {(node.domain, node.op_type) for node in model.graph.node}


def ort_session(model: onnx.ModelProto, threads: int = 1) -> Any:
    """An onnxruntime CPU session for ``model``, configured as the service configures its own."""
    return make_session(model.SerializeToString(), threads)
