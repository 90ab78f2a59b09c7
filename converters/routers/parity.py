"""The parity check every exported router passes: scikit-learn and ONNX Runtime must make the
same decisions on held-out rows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx

from converters.onnx_common import ort_session
from converters.routers.fit import TrainedRouter

#: Scores this close count as a tie in :func:`parity_check`'s ``tie_aware_agreement``.
DECISION_TIE_TOL = 1e-5


def parity_check(
    trained: TrainedRouter, onnx_model: onnx.ModelProto, X_holdout: npt.ArrayLike
) -> dict[str, float]:
    """Compare scikit-learn/numpy and onnxruntime predictions on held-out features.

    Returns ``max_abs_diff`` (over all scores), ``decision_agreement`` (share of rows whose
    argmax model is the same; exact ties resolve to the lowest index on both sides),
    ``tie_aware_agreement`` (share of rows where the ONNX argmax model is within
    :data:`DECISION_TIE_TOL` of the reference's best score — the same decision up to ties that
    float32 rounding breaks either way) and ``n``.
    """
    x = np.ascontiguousarray(X_holdout, dtype=np.float32)
    ref = trained.predict(x)
    (got,) = ort_session(onnx_model).run(["quality"], {"features": x})
    got = np.asarray(got, dtype=np.float32)
    if got.shape != ref.shape:
        raise ValueError(f"ONNX output shape {got.shape} != reference {ref.shape}")
    if not len(x):
        return {
            "max_abs_diff": 0.0,
            "decision_agreement": 1.0,
            "tie_aware_agreement": 1.0,
            "n": 0.0,
        }
    picked = ref[np.arange(len(x)), got.argmax(axis=1)]
    return {
        "max_abs_diff": float(np.abs(ref.astype(np.float64) - got).max()),
        "decision_agreement": float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1))),
        "tie_aware_agreement": float(np.mean(picked >= ref.max(axis=1) - DECISION_TIE_TOL)),
        "n": float(len(x)),
    }
