"""Custom strategies for the edge tests, loaded by the service through the config's dotted paths."""

from __future__ import annotations

from router_service.domain import Choice, RouteInput
from router_service.strategies.base import Features, HealthCheck, onehot_scores


class Keyword:
    """A model of ``match`` when the prompt (or any chat turn) contains ``keyword``, else one of
    ``otherwise``: the first of the list that is a candidate, else the first candidate.

    The reason names the request id (never prompt text), so tests can see what the edge sent.
    """

    kind = "keyword"
    needs_features = False
    blocking = False

    def __init__(self, keyword: str, match: list[str], otherwise: list[str]) -> None:
        self.keyword = keyword.lower()
        self.match = match
        self.otherwise = otherwise

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        hit = self.keyword in request.text().lower()
        names = [c.name for c in request.candidates]
        wanted = [n for n in (self.match if hit else self.otherwise) if n in names]
        name = wanted[0] if wanted else names[0]
        reason = f"keyword {'hit' if hit else 'miss'}; request_id={request.request_id}"
        return Choice(name, onehot_scores(request.candidates, name), reason)
