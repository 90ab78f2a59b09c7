"""A stand-in learned router for cache and engine tests: a counting featurizer (its rows are a
hash of the text) and a real ONNX quality router whose prediction for model i is feature i."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from onnx import TensorProto, helper

from router_service.bundles.base import LoadedRouter
from router_service.onnx_session import make_session
from router_service.strategies.learned import OnnxQualityRouter

MODELS = ("a", "b", "c", "d", "e", "f", "g", "h")


class CountingFeaturizer:
    name = "counting"
    dim = len(MODELS)
    batch_invariant = True
    input_kind = "text"

    def __init__(self, sha256: str = "c0" * 32, delay_s: float = 0.0) -> None:
        self.sha256 = sha256
        self.calls = 0
        self.delay_s = delay_s

    def featurize(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        rows = [
            np.frombuffer(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()[:8], "u1")
            for t in texts
        ]
        return (np.stack(rows).astype(np.float32) / 255.0).astype(np.float32)


def identity_session(n: int) -> ort.InferenceSession:
    """An ONNX session whose output ``quality`` is its input ``features`` (``[N, n]``)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["quality"])],
        "identity-quality",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info("quality", TensorProto.FLOAT, ["N", n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return make_session(model.SerializeToString())


def identity_router(models: Sequence[str] = MODELS, costs: float = 1.0) -> OnnxQualityRouter:
    """An ONNX router that predicts quality = the feature row (one column per model)."""
    return OnnxQualityRouter(
        "feature-quality",
        session=identity_session(len(models)),
        input_name="features",
        output_name="quality",
        models=models,
        model_costs=dict.fromkeys(models, costs),
        prices_apply=True,
        default_cost_weight=0.0,
    )


def learned_router(
    featurizer: CountingFeaturizer, sha256: str = "ab" * 32, version: str = "1"
) -> LoadedRouter:
    return LoadedRouter(
        name="ml",
        kind="feature-quality",
        version=version,
        strategy=identity_router(),
        featurizer=featurizer,
        models=MODELS,
        outputs=len(MODELS),
        sha256=sha256,
    )
