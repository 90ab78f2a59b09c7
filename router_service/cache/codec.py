"""Compact binary values: an array as the little-endian bytes of its dtype.

Two kinds are cached: a featurizer's row (``FEATURES``: float32 ``[1, dim]``) and a router's
prediction (``PREDICTIONS``: float64 quality per model ``[n_models]``, exactly as the router
gave it, so a cached prediction is bit-for-bit the fresh one). Decoded arrays are read-only:
the in-process tier hands the same array to every hit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FEATURES", "PREDICTIONS", "Array", "ArrayCodec"]

Array = npt.NDArray[Any]


class ArrayCodec:
    """Encodes arrays of one dtype and rank; ``kind`` names the entries (metrics, TTLs)."""

    def __init__(self, kind: str, dtype: str, ndim: int) -> None:
        self.kind = kind
        self._dtype = np.dtype(dtype)
        self._ndim = ndim

    def encode(self, value: Array) -> bytes:
        return np.ascontiguousarray(value, dtype=self._dtype).tobytes()

    def decode(self, raw: bytes) -> Array:
        """A read-only array; ``ValueError`` when ``raw`` is not whole values of the dtype."""
        size = self._dtype.itemsize
        if len(raw) == 0 or len(raw) % size:
            raise ValueError(f"{self.kind} value of {len(raw)} bytes is not {self._dtype} data")
        out = np.frombuffer(raw, dtype=self._dtype)
        out = out.reshape(1, -1) if self._ndim == 2 else out
        out.flags.writeable = False
        return out


FEATURES = ArrayCodec("features", "<f4", ndim=2)
PREDICTIONS = ArrayCodec("prediction", "<f8", ndim=1)
