"""A test strategy for the Envoy edge: the prompt says which model should answer.

``Keyword(keywords={"word": "model"})`` picks the candidate mapped to the first keyword found in
the request's text (case-insensitive), else the first candidate. Tests drive the routing from
the prompt they send, so they know which upstream must answer; the reason never quotes the text.
"""

from __future__ import annotations

from router_service.domain import Choice, RouteInput
from router_service.strategies.base import Features, HealthCheck, onehot_scores


class Keyword:
    kind = "keyword"
    needs_features = False
    blocking = False

    def __init__(self, keywords: dict[str, str] | None = None) -> None:
        self.keywords = {word.lower(): model for word, model in (keywords or {}).items()}

    def choose(self, request: RouteInput, features: Features | None, health: HealthCheck) -> Choice:
        text = request.text().lower()
        names = {c.name for c in request.candidates}
        for word, model in self.keywords.items():
            if word in text and model in names:
                return Choice(model, onehot_scores(request.candidates, model), "keyword match")
        first = request.candidates[0].name
        return Choice(first, onehot_scores(request.candidates, first), "no keyword: first")
