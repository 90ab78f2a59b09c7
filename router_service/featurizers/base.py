"""The featurizer seam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Featurizer"]


@runtime_checkable
class Featurizer(Protocol):
    """Maps texts to float32 features ``[len(texts), dim]``.

    ``sha256`` identifies the exact artifact (it keys the feature cache). ``featurize`` is
    CPU-bound and synchronous; the engine runs it off the event loop with a timeout, several
    texts per call under load. A featurizer whose rows depend on the other texts in the call
    sets ``batch_invariant = False``; the engine then calls it with one text at a time.
    """

    name: str
    sha256: str
    dim: int

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
