"""The learned strategy: an ONNX model predicts a quality per known model, the policy picks.

Policy: among the request's candidates that the router has a prediction for (a model it knows,
with a finite predicted quality: NaN or inf is "no prediction", wherever the candidate stands)
and that are usable, choose
``argmax quality − λ·cost``; with ``min_quality`` set, the cheapest candidate whose predicted
quality is at least that (the best one when none reaches it). λ is the request's
``cost_weight`` when set, else the bundle's calibrated default. Cost: a candidate's request
price (mean of input and output, USD per 1M tokens) when the bundle's costs are in that unit,
else the bundle's own cost for the model. When every candidate the router can score is
unavailable or benched but another candidate is usable, the router does not answer (the
engine's fallback picks a usable one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from router_service.domain import Candidate, CandidateScore, Choice, RouteInput
from router_service.errors import StrategyError
from router_service.strategies.base import Features, HealthCheck, usable

__all__ = ["OnnxQualityRouter"]

_TIE = 1e-6
"""Scores this close are a tie; the cheaper candidate wins (as in offline evaluation)."""


class OnnxQualityRouter:
    needs_features = True
    blocking = False

    def __init__(
        self,
        kind: str,
        *,
        session: ort.InferenceSession,
        input_name: str,
        output_name: str,
        models: Sequence[str],
        model_costs: Mapping[str, float],
        prices_apply: bool,
        default_cost_weight: float,
    ) -> None:
        self.kind = kind
        self._session = session
        self._input = input_name
        self._output = output_name
        self._index = {name: i for i, name in enumerate(models)}
        self._costs = dict(model_costs)
        self._prices_apply = prices_apply
        self._default_weight = default_cost_weight

    def predict_batch(self, features: Features) -> npt.NDArray[np.float64]:
        """Quality per known model, float ``[n, len(models)]`` for ``n`` feature rows."""
        (out,) = self._session.run([self._output], {self._input: features})
        rows: npt.NDArray[np.float64] = np.asarray(out, dtype=np.float64)
        return rows

    def predict(self, features: Features) -> npt.NDArray[np.float64]:
        """Quality per known model, float ``[len(models)]`` for one feature row."""
        row: npt.NDArray[np.float64] = self.predict_batch(features)[0]
        return row

    def _cost(self, cand: Candidate) -> float:
        if self._prices_apply and cand.price is not None:
            return cand.price
        return self._costs[cand.name]

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        if features is None:
            raise StrategyError("no features")
        return self.choose_scored(request, self.predict(features), health)

    def choose_scored(
        self, request: RouteInput, quality: npt.NDArray[np.float64], health: HealthCheck
    ) -> Choice:
        weight = request.policy.cost_weight
        lam = self._default_weight if weight is None else weight
        values = quality.tolist()  # one conversion, not one numpy scalar per candidate
        scored: dict[str, _Scored] = {}
        for c in request.candidates:
            i = self._index.get(c.name)
            if i is not None and math.isfinite(q := values[i]):  # NaN/inf: no prediction
                cost = self._cost(c)
                scored[c.name] = _Scored(c, q, cost, q - lam * cost)
        if not scored:
            raise StrategyError("no candidate is a model this router has a prediction for")
        pool = [s for s in scored.values() if not s.cand.unavailable and health(s.cand.name)]
        note = ""
        if not pool:
            if usable(request.candidates, health)[1]:
                raise StrategyError("every candidate this router can score is unavailable")
            pool, note = list(scored.values()), " (no healthy candidate)"  # beats no answer
        chosen, reason = _pick(pool, request.policy.min_quality, lam)
        scores = tuple(
            CandidateScore(c.name, s.score, s.quality, s.cost)
            if (s := scored.get(c.name)) is not None
            else CandidateScore(c.name, -math.inf)
            for c in request.candidates
        )
        return Choice(chosen, scores, reason + note)


class _Scored(NamedTuple):
    cand: Candidate
    quality: float
    cost: float
    score: float


def _pick(pool: Sequence[_Scored], min_quality: float | None, lam: float) -> tuple[str, str]:
    """The policy over the usable scored candidates: the model and the reason."""
    if min_quality is not None:
        good = [s for s in pool if s.quality >= min_quality]
        if good:
            best = min(good, key=lambda s: (s.cost, -s.quality))
            return best.cand.name, f"cheapest with predicted quality >= {min_quality:g}"
        best = max(pool, key=lambda s: s.quality)
        return best.cand.name, f"none predicted >= {min_quality:g}; highest predicted quality"
    top = max(s.score for s in pool)
    best = min((s for s in pool if s.score >= top - _TIE), key=lambda s: s.cost)
    return best.cand.name, f"best predicted quality - {lam:g} x cost"
