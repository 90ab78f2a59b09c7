"""Small real bundles built with onnx.helper: a linear quality model over client embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.bundle import write_bundle
from router_service.bundles.manifest import FeaturizerSpec, PricePriorSpec

MODELS = ["small", "medium", "large"]
COSTS = {"small": 0.1, "medium": 0.5, "large": 2.0}


def linear_quality_onnx(
    weights: np.ndarray, bias: np.ndarray, extra_op: str | None = None
) -> bytes:
    """quality = sigmoid(x @ W + b): input ``features`` [N, d], output ``quality`` [N, m]."""
    d, m = weights.shape
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["quality"]),
    ]
    opsets = [helper.make_opsetid("", 17)]
    if extra_op is not None:  # a node from a domain the service must refuse
        domain, op = extra_op.split(":")
        nodes[-1] = helper.make_node(op, ["logits"], ["quality"], domain=domain)
        opsets.append(helper.make_opsetid(domain, 1))
    graph = helper.make_graph(
        nodes,
        "linear-quality",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("quality", TensorProto.FLOAT, ["N", m])],
        [
            numpy_helper.from_array(weights.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=opsets, producer_name="routeiq-tests")
    if extra_op is None:
        onnx.checker.check_model(model)
    return model.SerializeToString()


def embedding_bundle(
    out: Path,
    name: str = "emb-linear",
    dim: int = 4,
    version: str = "v1",
    extra_op: str | None = None,
    default_cost_weight: float = 0.0,
    price_prior: PricePriorSpec | None = None,
    extra_files: dict[str, bytes] | None = None,
    best: tuple[int, ...] = (0, 1, 2),
) -> Path:
    """Feature i pushes model ``best[i]``'s quality up: embedding e_i makes MODELS[best[i]] the
    best (by default MODELS[i]). ``extra_files`` are listed in the manifest beside router.onnx."""
    weights = np.zeros((dim, len(MODELS)))
    for i in range(len(MODELS)):
        weights[i, best[i]] = 6.0
    bias = np.array([-1.0, -1.0, -1.0])
    write_bundle(
        out,
        name=name,
        router_kind="linear",
        models=MODELS,
        model_costs=COSTS,
        featurizer=FeaturizerSpec(kind="embedding", dim=dim),
        files={"router.onnx": linear_quality_onnx(weights, bias, extra_op), **(extra_files or {})},
        version=version,
        default_cost_weight=default_cost_weight,
        price_prior=price_prior,
    )
    return out
