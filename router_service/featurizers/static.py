"""The distilled static encoder's graph, evaluated with numpy.

The graph :func:`converters.features.static.build_static_onnx` writes is ten nodes around two
tables: ``normalize(Σ w[id]·table[id])`` over a text's tokens (attention mask all ones for one
text). ONNX Runtime dispatches those ten nodes in about 45 µs per prompt here; numpy does the
same arithmetic from the graph's own initializers in about 20. So for a graph of exactly this
form the featurizer reads ``table`` and ``weights`` out of it and checks, at load, that numpy
and ONNX Runtime agree on probe texts (within 1e-5 per component) before using them; any other
graph, or a disagreement, keeps ONNX Runtime. The bundle still ships, and its parity check
still validates, the ONNX graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["StaticTables"]

F32 = npt.NDArray[np.float32]
_OPS = (
    "Gather",
    "Gather",
    "Cast",
    "Mul",
    "Unsqueeze",
    "Mul",
    "ReduceSum",
    "ReduceL2",
    "Max",
    "Div",
)
_EPS = np.float32(1e-12)
TOLERANCE = 1e-5


class StaticTables:
    """``embed(rows)``: one L2-normalised row per list of token ids, as the graph computes it."""

    def __init__(self, table: F32, weights: F32) -> None:
        if table.ndim != 2 or weights.shape != (table.shape[0],):
            raise ValueError(f"table {table.shape} and weights {weights.shape} do not match")
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)

    @classmethod
    def from_graph(cls, path: Path) -> StaticTables | None:
        """The tables of a static-encoder graph at ``path``; None for a graph of another form."""
        import onnx  # noqa: PLC0415 - only static graphs need it; the featurizers stay light
        from onnx import numpy_helper  # noqa: PLC0415

        model = onnx.load(str(path))
        if tuple(node.op_type for node in model.graph.node) != _OPS:
            return None
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        table, weights = inits.get("table"), inits.get("weights")
        if table is None or weights is None or table.ndim != 2:
            return None
        if weights.shape != (table.shape[0],):
            return None
        return cls(table, weights)

    def embed(self, rows: Sequence[list[int]]) -> F32:
        out = np.empty((len(rows), self.table.shape[1]), dtype=np.float32)
        for i, ids in enumerate(rows):
            idx = np.asarray(ids, dtype=np.intp)
            summed = self.weights[idx] @ self.table[idx]
            out[i] = summed / max(np.float32(np.sqrt(summed @ summed)), _EPS)
        return out
