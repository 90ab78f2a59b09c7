"""The featurizer seam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Featurizer", "InputKind"]

InputKind = Literal["text", "vector"]


@runtime_checkable
class Featurizer(Protocol):
    """Maps texts to float32 features ``[len(texts), dim]``.

    ``sha256`` identifies the featurizer's output exactly: its artifact and every setting that
    changes what it returns (it keys the feature cache). ``featurize`` is CPU-bound and
    synchronous; the engine runs it off the event loop with a timeout, several texts per call
    under load.

    Declared capabilities, read by the engine:

    - ``batch_invariant``: False when a row depends on the other texts in the call; the engine
      then calls it with one text at a time.
    - ``input_kind``: ``"text"`` (the request's prompt or messages) or ``"vector"`` (the
      client sends the features itself as ``embedding``; ``featurize`` is never called).
    """

    name: str
    sha256: str
    dim: int
    batch_invariant: bool
    input_kind: InputKind

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
