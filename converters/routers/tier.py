"""The price ladder a ``tier`` router learns: from any models with prices, the quality a
prompt gets at each rung of price, so the router can route between models it never saw.

Rule (:func:`price_ladder`), on the training rows:

1. models are grouped by price (the dataset's list price, else its mean cost per query):
   walking up from the cheapest, a model joins the current group while its price is within
   ``span`` times the group's cheapest (0.10 and 0.20 share a group at the default 2.5);
2. walking up from the cheapest group, a group becomes a rung only when its best model's mean
   quality beats every cheaper rung's (a dearer group that is not better is not a step up);
3. a rung's *members* are its models within ``margin`` of its best model's mean quality (a
   weak model at a price does not speak for what that price buys), and its target for a
   prompt (:func:`ladder_targets`) is the members' mean quality on that prompt;
4. rung positions are the rung prices' places on their log-price scale
   (:func:`router_service.strategies.tier.ladder_positions`: 0 = cheapest rung, 1 = dearest).

Any router kind then learns the ``[n, rungs]`` targets; the service interpolates them at the
request's candidates' positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_service.strategies.tier import ladder_positions

__all__ = ["DEFAULT_MARGIN", "PriceLadder", "ladder_targets", "price_ladder"]

F64 = npt.NDArray[np.float64]
DEFAULT_MARGIN = 0.1
"""Quality below a rung's best model within which a model of the same price is a member."""
DEFAULT_SPAN = 2.5
"""Prices within this factor of a group's cheapest belong to the group."""


def _price_groups(prices: F64, span: float) -> list[list[int]]:
    groups: list[list[int]] = []
    floor = -1.0
    for j in np.argsort(prices, kind="stable"):
        if groups and prices[j] <= floor * span:
            groups[-1].append(int(j))
        else:
            groups.append([int(j)])
            floor = float(prices[j])
    return groups


@dataclass(frozen=True)
class PriceLadder:
    """Rungs from cheapest to dearest: position, price, member models (column indices) and the
    representative (the best member)."""

    positions: tuple[float, ...]
    prices: tuple[float, ...]
    members: tuple[tuple[int, ...], ...]
    representatives: tuple[int, ...]

    def describe(self, models: Sequence[str]) -> list[dict[str, object]]:
        """JSON-able rungs, for the manifest's provenance."""
        return [
            {
                "position": round(z, 6),
                "price": p,
                "members": [models[j] for j in members],
                "representative": models[rep],
            }
            for z, p, members, rep in zip(
                self.positions, self.prices, self.members, self.representatives, strict=True
            )
        ]


def price_ladder(
    prices: npt.ArrayLike,
    Y_train: npt.ArrayLike,
    margin: float = DEFAULT_MARGIN,
    span: float = DEFAULT_SPAN,
) -> PriceLadder:
    """The ladder of ``prices`` (one per model) on training qualities ``Y_train [n, m]``."""
    y = np.asarray(Y_train, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(p) or len(y) == 0:
        raise ValueError(f"need one price per model column; got {len(p)} prices, Y {y.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("prices must be finite and >= 0")
    mean = y.mean(axis=0)
    rungs: list[tuple[float, tuple[int, ...], int]] = []
    for group in _price_groups(p, span):
        best = max(group, key=lambda j: (mean[j], -p[j]))
        if rungs and mean[best] <= mean[rungs[-1][2]]:
            continue  # dearer, not better: not a step up
        members = tuple(j for j in group if mean[j] >= mean[best] - margin)
        rungs.append((float(p[best]), members, best))
    if len(rungs) < 2:
        raise ValueError(
            "a tier router needs at least two prices where the dearer models are better on "
            f"average; mean quality by model: {np.round(mean, 3).tolist()} at prices {p.tolist()}"
        )
    rung_prices = [r[0] for r in rungs]
    positions = ladder_positions(rung_prices)
    positions[0], positions[-1] = 0.0, 1.0
    return PriceLadder(
        positions=tuple(positions),
        prices=tuple(rung_prices),
        members=tuple(r[1] for r in rungs),
        representatives=tuple(r[2] for r in rungs),
    )


def ladder_targets(Y: npt.ArrayLike, ladder: PriceLadder) -> F64:
    """Per prompt and rung, the members' mean quality: ``[n, rungs]``."""
    y = np.asarray(Y, dtype=np.float64)
    return np.stack([y[:, list(members)].mean(axis=1) for members in ladder.members], axis=1)
