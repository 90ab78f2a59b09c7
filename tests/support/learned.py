"""A stand-in learned router for cache and engine tests: a counting featurizer and a strategy
that scores candidates from the features. (Real ONNX bundles are tested on their own.)"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from router_service.bundles.base import LoadedRouter
from router_service.engine.types import CandidateScore, Choice, RouteInput
from router_service.strategies.base import Features, HealthCheck


class CountingFeaturizer:
    name = "counting"
    dim = 8

    def __init__(self, sha256: str = "c0" * 32, delay_s: float = 0.0) -> None:
        self.sha256 = sha256
        self.calls = 0
        self.delay_s = delay_s

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        rows = [
            np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8) for t in texts
        ]
        return (np.stack(rows).astype(np.float32) / 255.0).astype(np.float32)


class FeatureArgmax:
    kind = "feature-argmax"
    needs_features = True

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        assert features is not None
        row = features[0]
        scores = [float(row[i % len(row)]) for i in range(len(request.candidates))]
        best = max(range(len(scores)), key=scores.__getitem__)
        return Choice(
            request.candidates[best].name,
            tuple(
                CandidateScore(c.name, s, quality=s)
                for c, s in zip(request.candidates, scores, strict=True)
            ),
            "highest feature",
        )


def learned_router(
    featurizer: CountingFeaturizer, sha256: str = "ab" * 32, version: str = "1"
) -> LoadedRouter:
    return LoadedRouter(
        name="ml",
        kind="feature-argmax",
        version=version,
        strategy=FeatureArgmax(),
        featurizer=featurizer,
        sha256=sha256,
    )
