"""The price-ladder strategy (router kind ``tier``): routes between any models, by price.

The ONNX model predicts, for a prompt, the quality a model reaches at each rung of a price
ladder (``ladder``: positions in [0, 1], 0 = the cheapest candidate, 1 = the most expensive),
learned from whatever models the training data has. At serving time each candidate's position
is its place on the request's own log-price scale (:func:`ladder_positions`), its quality the
prediction interpolated at that position, and the policy is the learned one with the position
in place of the cost: ``argmax quality − λ·position`` (λ = quality given up per whole step from
the cheapest to the most expensive candidate, whatever their prices), or with ``min_quality``
the cheapest candidate predicted to reach it. No candidate name needs to be known: a
candidate's price comes from the request, else from the bundle (models it was trained on);
candidates with neither are not scored. Equal prices share a position (the first such candidate
in request order wins the tie).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from router_service.domain import Choice, QualityBasis, RouteInput
from router_service.errors import StrategyError
from router_service.strategies.base import HealthCheck
from router_service.strategies.learned import OnnxPredictor, Scored, choose_among

__all__ = ["PRICE_FLOOR_SHARE", "PriceLadderRouter", "ladder_positions", "ladder_quality"]

PRICE_FLOOR_SHARE = 0.01
"""A floor of 1 % of the highest price is added to every price before taking its log, so a
free model has a finite position and tiny prices do not stretch the ladder. Being a share, it
keeps positions independent of the price unit (per token, per 1M tokens, per query)."""


def ladder_positions(prices: Sequence[float]) -> list[float]:
    """Each price's position on the log-price scale of ``prices``: 0 for the cheapest,
    1 for the most expensive, ``(ln(p + f) − ln(min + f)) / (ln(max + f) − ln(min + f))`` with
    ``f`` = :data:`PRICE_FLOOR_SHARE` × the highest price; all 0 when every price is the
    same."""
    clean = [max(p, 0.0) for p in prices]
    if not clean or max(clean) <= 0:
        return [0.0] * len(clean)
    floor = PRICE_FLOOR_SHARE * max(clean)
    logs = [math.log(p + floor) for p in clean]
    low, high = min(logs), max(logs)
    span = high - low
    return [(v - low) / span if span > 0 else 0.0 for v in logs]


def ladder_quality(
    outputs: npt.ArrayLike, ladder: Sequence[float], positions: Sequence[float]
) -> npt.NDArray[np.float64]:
    """Predicted quality at ``positions``: the outputs (one per rung, ``[..., len(ladder)]``)
    interpolated linearly between rungs; ``[..., len(positions)]``."""
    out = np.asarray(outputs, dtype=np.float64)
    rungs = np.asarray(ladder, dtype=np.float64)
    flat = out.reshape(-1, len(rungs))
    rows = [np.interp(positions, rungs, row) for row in flat]
    return np.asarray(rows, dtype=np.float64).reshape(*out.shape[:-1], len(positions))


class PriceLadderRouter(OnnxPredictor):
    """A learned router over price positions (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        *,
        session: ort.InferenceSession,
        input_name: str,
        output_name: str,
        ladder: Sequence[float],
        model_prices: Mapping[str, float],
        default_cost_weight: float,
    ) -> None:
        super().__init__(session, input_name, output_name, default_cost_weight)
        self.kind = kind
        self._ladder = [float(v) for v in ladder]
        self._prices = dict(model_prices)

    def choose_scored(
        self, request: RouteInput, quality: npt.NDArray[np.float64], health: HealthCheck
    ) -> Choice:
        if not np.isfinite(quality).all():
            raise StrategyError("the router gave no prediction for this prompt")
        priced = []
        for c in request.candidates:
            price = c.price if c.price is not None else self._prices.get(c.name)
            if price is not None and math.isfinite(price):
                priced.append((c, price))
        if not priced:
            raise StrategyError("no candidate has a price (a tier router ranks them by price)")
        positions = ladder_positions([p for _, p in priced])
        at = ladder_quality(quality, self._ladder, positions).tolist()
        lam = self.cost_weight(request)
        scored = {
            c.name: Scored(c, q, price, q - lam * z, QualityBasis.PRICE_LADDER)
            for (c, price), z, q in zip(priced, positions, at, strict=True)
        }
        return choose_among(request, scored, health, lam, term="price position")
