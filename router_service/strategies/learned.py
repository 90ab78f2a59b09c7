"""The learned strategy: an ONNX model predicts a quality per known model, the policy picks.

Policy: among the request's candidates that the router has a prediction for (a model it knows,
with a finite predicted quality: NaN or inf is "no prediction", wherever the candidate stands)
and that are usable, choose
``argmax quality − λ·cost``; with ``min_quality`` set, the cheapest candidate whose predicted
quality is at least that (the best one when none reaches it). λ is the request's
``cost_weight`` when set, else the bundle's calibrated default. Cost: a candidate's request
price (mean of input and output, USD per 1M tokens) when the bundle's costs are in that unit,
else the bundle's own cost for the model. A candidate named in the config's ``aliases`` is
scored as the model it stands for; with the bundle's price prior, a priced candidate the router
does not know is scored by :class:`PricePrior` (beside at least one known one). When every
candidate the router can score is unavailable or benched but another candidate is usable, the
router does not answer (the engine's fallback picks a usable one). The price-ladder router
(:mod:`router_service.strategies.tier`) shares the prediction half and this policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from router_service.domain import Candidate, CandidateScore, Choice, QualityBasis, RouteInput
from router_service.errors import StrategyError
from router_service.strategies.base import Features, HealthCheck, usable

__all__ = ["OnnxPredictor", "OnnxQualityRouter", "PricePrior", "Scored", "choose_among"]

TIE = 1e-6
"""Scores this close are a tie; the cheaper candidate wins (as in offline evaluation)."""


class OnnxPredictor:
    """The prediction half of a learned strategy: one ONNX session from feature rows to a
    float row of outputs per request; subclasses add the policy (``choose_scored``)."""

    kind: str
    needs_features = True
    blocking = False

    def __init__(
        self,
        session: ort.InferenceSession,
        input_name: str,
        output_name: str,
        default_cost_weight: float,
    ) -> None:
        self._session = session
        self._input = input_name
        self._output = output_name
        self._default_weight = default_cost_weight

    def cost_weight(self, request: RouteInput) -> float:
        """λ: the request's ``cost_weight`` when set, else the bundle's calibrated default."""
        weight = request.policy.cost_weight
        return self._default_weight if weight is None else weight

    def predict_batch(self, features: Features) -> npt.NDArray[np.float64]:
        """Outputs float ``[n, outputs]`` for ``n`` feature rows."""
        (out,) = self._session.run([self._output], {self._input: features})
        rows: npt.NDArray[np.float64] = np.asarray(out, dtype=np.float64)
        return rows

    def predict(self, features: Features) -> npt.NDArray[np.float64]:
        """Outputs float ``[outputs]`` for one feature row."""
        row: npt.NDArray[np.float64] = self.predict_batch(features)[0]
        return row

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        if features is None:
            raise StrategyError("no features")
        return self.choose_scored(request, self.predict(features), health)

    def choose_scored(
        self, request: RouteInput, quality: npt.NDArray[np.float64], health: HealthCheck
    ) -> Choice:
        raise NotImplementedError


class PricePrior(NamedTuple):
    """A cold-start prior for a candidate the router was not trained on, from its price:
    the training models' mean quality at the prices ``exp(log_prices)`` (USD per 1M tokens,
    increasing), interpolated over log price and held flat beyond the ends, plus this prompt's
    :meth:`shift` (the mean predicted quality of the known models minus ``mean_quality``,
    their training mean)."""

    log_prices: tuple[float, ...]
    quality: tuple[float, ...]
    mean_quality: float

    @classmethod
    def of(cls, prices: Sequence[float], quality: Sequence[float], mean: float) -> PricePrior:
        return cls(tuple(math.log(p) for p in prices), tuple(quality), mean)

    def shift(self, predicted: Sequence[float]) -> float:
        """This prompt's shift, from the router's predictions for its known models."""
        known = [q for q in predicted if math.isfinite(q)]
        return sum(known) / len(known) - self.mean_quality if known else 0.0

    def at(self, price: float, shift: float) -> float:
        base = float(np.interp(math.log(max(price, 1e-12)), self.log_prices, self.quality))
        return min(max(base + shift, 0.0), 1.0)


class OnnxQualityRouter(OnnxPredictor):
    """Predicts one quality per model the bundle was trained on (output order = ``models``).

    ``aliases`` map candidate names to those models (a deployment that stands for one); with a
    ``prior``, a priced candidate it knows neither way gets :class:`PricePrior`'s quality when
    at least one candidate is a known model (marked ``PRICE_PRIOR`` in its score).
    """

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
        aliases: Mapping[str, str] | None = None,
        prior: PricePrior | None = None,
    ) -> None:
        super().__init__(session, input_name, output_name, default_cost_weight)
        self.kind = kind
        self._index = {name: i for i, name in enumerate(models)}
        self._costs = dict(model_costs)
        for alias, model in (aliases or {}).items():
            self._index[alias] = self._index[model]
            self._costs[alias] = self._costs[model]
        self._prices_apply = prices_apply
        self._prior = prior if prices_apply else None

    def _cost(self, cand: Candidate) -> float:
        if self._prices_apply and cand.price is not None:
            return cand.price
        return self._costs[cand.name]

    def choose_scored(
        self, request: RouteInput, quality: npt.NDArray[np.float64], health: HealthCheck
    ) -> Choice:
        lam = self.cost_weight(request)
        values = quality.tolist()  # one conversion, not one numpy scalar per candidate
        scored: dict[str, Scored] = {}
        unknown: list[Candidate] = []
        for c in request.candidates:
            i = self._index.get(c.name)
            if i is None:
                unknown.append(c)
            elif math.isfinite(q := values[i]):  # NaN/inf: no prediction
                cost = self._cost(c)
                scored[c.name] = Scored(c, q, cost, q - lam * cost)
        if not scored:
            raise StrategyError("no candidate is a model this router has a prediction for")
        prior, priors = self._prior, 0
        if prior is not None and unknown:
            shift = prior.shift(values)
            for c in unknown:
                if (price := c.price) is not None:
                    q = prior.at(price, shift)
                    scored[c.name] = Scored(c, q, price, q - lam * price, QualityBasis.PRICE_PRIOR)
                    priors += 1
        note = f" (price prior for {priors} unknown)" if priors else ""
        return choose_among(request, scored, health, lam, term="cost", note=note)


class Scored(NamedTuple):
    """A candidate the router has a quality for: ``score`` is what the policy maximises,
    ``cost`` what it reports and breaks ties (and ``min_quality``) with."""

    cand: Candidate
    quality: float
    cost: float
    score: float
    basis: QualityBasis = QualityBasis.PREDICTED


def choose_among(
    request: RouteInput,
    scored: Mapping[str, Scored],
    health: HealthCheck,
    lam: float,
    *,
    term: str,
    note: str = "",
) -> Choice:
    """The policy over the scored candidates (``term`` names what λ weighs, and ``note`` is
    added to the reason).

    Only usable ones are chosen; when every scored candidate is unusable but another candidate
    is usable, :class:`StrategyError` (the engine's fallback picks a usable one); when none at
    all is usable, the best scored one (a degraded answer beats none).
    """
    pool = [s for s in scored.values() if not s.cand.unavailable and health(s.cand.name)]
    if not pool:
        if usable(request.candidates, health)[1]:
            raise StrategyError("every candidate this router can score is unavailable")
        pool, note = list(scored.values()), note + " (no healthy candidate)"  # beats no answer
    chosen, reason = _pick(pool, request.policy.min_quality, lam, term)
    scores = tuple(
        CandidateScore(c.name, s.score, s.quality, s.cost, s.basis)
        if (s := scored.get(c.name)) is not None
        else CandidateScore(c.name, -math.inf)
        for c in request.candidates
    )
    return Choice(chosen, scores, reason + note)


def _pick(
    pool: Sequence[Scored], min_quality: float | None, lam: float, term: str
) -> tuple[str, str]:
    """The policy over the usable scored candidates: the model and the reason."""
    if min_quality is not None:
        good = [s for s in pool if s.quality >= min_quality]
        if good:
            best = min(good, key=lambda s: (s.cost, -s.quality))
            return best.cand.name, f"cheapest with predicted quality >= {min_quality:g}"
        best = max(pool, key=lambda s: s.quality)
        return best.cand.name, f"none predicted >= {min_quality:g}; highest predicted quality"
    top = max(s.score for s in pool)
    best = min((s for s in pool if s.score >= top - TIE), key=lambda s: s.cost)
    return best.cand.name, f"best predicted quality - {lam:g} x {term}"
