"""Conversion between Router API messages and the engine's types."""

from __future__ import annotations

import dataclasses

from router_service.cache.codec import decode_decision, encode_decision
from router_service.engine.types import Candidate, CandidateScore, Decision, Policy, Source
from router_service.proto import pb
from router_service.surfaces.convert import decision_to_pb, route_from_pb


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


def test_a_cached_decision_answers_with_the_same_message_as_a_fresh_one() -> None:
    fresh = Decision(
        "r-9",
        "b",
        (CandidateScore("a", 0.1, 0.7, 2.0), CandidateScore("b", 0.5)),
        "knn",
        "v3",
        Source.CACHE,
        "best",
        42,
    )
    cached = decode_decision(encode_decision(fresh))
    assert cached.encoded and cached.request_id == "" and cached.latency_us == 0
    hit = Decision(
        "r-9", cached.model, cached.scores, "knn", "v3", Source.CACHE, "best", 42, cached.encoded
    )
    assert decision_to_pb(hit) == decision_to_pb(fresh)
    assert decision_to_pb(hit).source == pb.CACHE and decision_to_pb(hit).request_id == "r-9"
    changed = dataclasses.replace(hit, model="a")  # the encoding no longer matches: rebuilt
    assert decision_to_pb(changed).model == "a"


def test_large_offers_are_converted_but_not_kept() -> None:
    many = pb.RouteRequest(
        prompt="hi", candidates=[pb.Candidate(name=f"model-{i:05d}") for i in range(2000)]
    )
    first = route_from_pb(many)
    again = pb.RouteRequest(prompt="hi", candidates=many.candidates)
    second = route_from_pb(again)
    assert len(first.candidates) == 2000 and second.candidates == first.candidates
    assert second.candidates is not first.candidates
