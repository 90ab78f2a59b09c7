"""Featurizers whose ONNX graph takes the raw text (TF-IDF, with or without SVD), and the
``embedding`` featurizer, where the client sends the vector itself."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router_service.featurizers.base import InputKind
from router_service.onnx_session import make_session

__all__ = ["ClientEmbedding", "OnnxTextFeaturizer"]


class OnnxTextFeaturizer:
    """Runs a graph with one string input (``[n, 1]`` or ``[n]``) and one float output
    ``[n, dim]``. Synchronous; safe to call from several threads."""

    batch_invariant = True
    input_kind: InputKind = "text"

    def __init__(self, name: str, model: bytes, sha256: str, dim: int) -> None:
        self.name = name
        self.sha256 = sha256
        self._session = make_session(model)
        (inp,) = self._session.get_inputs()
        self._input = inp.name
        self._column = len(inp.shape) == 2
        self._output = self._session.get_outputs()[0].name
        self.dim = dim

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        batch = np.asarray(list(texts), dtype=object)
        if self._column:
            batch = batch.reshape(-1, 1)
        (out,) = self._session.run([self._output], {self._input: batch})
        features = np.asarray(out, dtype=np.float32)
        if features.shape != (len(texts), self.dim):
            raise ValueError(f"featurizer {self.name} gave shape {features.shape}")
        return features


class ClientEmbedding:
    """The client supplies the features; the engine never calls ``featurize``."""

    name = "embedding"
    batch_invariant = True
    input_kind: InputKind = "vector"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.sha256 = f"embedding-{dim}"

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise TypeError("the embedding featurizer takes vectors from the request, not text")
