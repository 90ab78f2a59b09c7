"""Conversion between Router API messages and the engine's types."""

from __future__ import annotations

from router_service.domain import Candidate, CandidateScore, Decision, Policy, Source
from router_service.proto import pb
from router_service.surfaces.codec import decision_to_pb, route_from_pb


def _request(prompt: str, request_id: str, price: float | None = 1.5) -> pb.RouteRequest:
    priced = {} if price is None else {"input_price_per_mtok": price}
    return pb.RouteRequest(
        request_id=request_id,
        prompt=prompt,
        router="knn",
        policy=pb.Policy(cost_weight=0.25),
        candidates=[pb.Candidate(name="a", **priced), pb.Candidate(name="b", unavailable=True)],
        labels={"team": "search"},
    )


def test_route_from_pb_reads_every_field() -> None:
    req = route_from_pb(_request("What is 2+2?", "r-1"))
    assert req.request_id == "r-1" and req.prompt == "What is 2+2?" and req.router == "knn"
    assert req.policy == Policy(cost_weight=0.25, min_quality=None)
    assert req.candidates == (Candidate("a", 1.5, None), Candidate("b", None, None, True))
    assert req.labels == {"team": "search"} and req.messages is None and req.embedding is None
    chat = pb.RouteRequest(
        messages=pb.Conversation(turns=[pb.ChatMessage(role="user", content="hi")]),
        candidates=[pb.Candidate(name="a")],
    )
    assert route_from_pb(chat).messages == (("user", "hi"),)
    vector = pb.RouteRequest(embedding=pb.Embedding(values=[0.5, 2.0]))
    assert route_from_pb(vector).embedding == (0.5, 2.0)


def test_route_from_pb_converts_each_offer_once_and_keeps_inputs_apart() -> None:
    first = route_from_pb(_request("one", "r-1"))
    second = route_from_pb(_request("two", "r-2"))
    assert second.candidates is first.candidates and second.policy is first.policy
    assert (first.prompt, first.request_id, second.prompt, second.request_id) == (
        "one",
        "r-1",
        "two",
        "r-2",
    )
    free = route_from_pb(_request("one", "r-3", price=0.0))
    unknown = route_from_pb(_request("one", "r-4", price=None))
    assert free.candidates[0].input_price == 0.0 and unknown.candidates[0].input_price is None


def test_decision_to_pb_writes_every_field_with_scores_in_order() -> None:
    decision = Decision(
        "r-9",
        "b",
        (CandidateScore("a", 0.1, 0.7, 2.0), CandidateScore("b", 0.5)),
        "knn",
        "v3",
        Source.CACHE,
        "best",
        42,
    )
    msg = decision_to_pb(decision)
    assert (msg.request_id, msg.model, msg.router, msg.router_version) == ("r-9", "b", "knn", "v3")
    assert (msg.source, msg.reason, msg.latency_us) == (pb.CACHE, "best", 42)
    assert [(s.model, s.score) for s in msg.scores] == [("a", 0.1), ("b", 0.5)]
    assert msg.scores[0].quality == 0.7 and msg.scores[0].cost == 2.0
    assert not msg.scores[1].HasField("quality") and not msg.scores[1].HasField("cost")


def test_large_offers_are_converted_but_not_kept() -> None:
    many = pb.RouteRequest(
        prompt="hi", candidates=[pb.Candidate(name=f"model-{i:05d}") for i in range(2000)]
    )
    first = route_from_pb(many)
    again = pb.RouteRequest(prompt="hi", candidates=many.candidates)
    second = route_from_pb(again)
    assert len(first.candidates) == 2000 and second.candidates == first.candidates
    assert second.candidates is not first.candidates
