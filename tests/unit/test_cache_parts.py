import numpy as np
import pytest

from router_service.cache.breaker import BreakerState, CircuitBreaker
from router_service.cache.codec import (
    decode_decision,
    decode_features,
    encode_decision,
    encode_features,
)
from router_service.cache.keys import decision_key, feature_key, input_digest, text_hash
from router_service.cache.lru import LruCache
from router_service.cache.tiered import TieredCache
from router_service.engine.types import (
    Candidate,
    CandidateScore,
    Decision,
    Policy,
    RouteInput,
    Source,
)
from router_service.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lru_evicts_least_recently_used_by_entries() -> None:
    lru: LruCache[bytes] = LruCache(max_entries=2, max_bytes=10_000)
    lru.put("a", b"1", 1, 60)
    lru.put("b", b"2", 1, 60)
    assert lru.get("a") == b"1"  # a is now most recent
    lru.put("c", b"3", 1, 60)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (b"1", None, b"3")


def test_lru_bounded_by_bytes_and_skips_oversized_values() -> None:
    lru: LruCache[bytes] = LruCache(max_entries=100, max_bytes=30)
    lru.put("k1", b"x" * 10, 10, 60)
    lru.put("k2", b"y" * 10, 10, 60)
    assert lru.nbytes == 24
    lru.put("k3", b"z" * 10, 10, 60)  # 36 bytes > 30: k1 goes
    assert lru.get("k1") is None and lru.get("k3") == b"z" * 10
    lru.put("big", b"w" * 40, 40, 60)
    assert lru.get("big") is None
    assert lru.nbytes <= 30


def test_lru_entries_expire() -> None:
    clock = Clock()
    lru: LruCache[bytes] = LruCache(10, 1000, clock=clock)
    lru.put("a", b"1", 1, ttl_s=5)
    clock.now += 4.9
    assert lru.get("a") == b"1"
    clock.now += 0.2
    assert lru.get("a") is None
    assert len(lru) == 0


def test_breaker_opens_after_consecutive_failures_and_probes_after_reset() -> None:
    clock = Clock()
    seen: list[BreakerState] = []
    br = CircuitBreaker(3, reset_after_s=2.0, clock=clock, on_change=seen.append)
    br.failure()
    br.success()  # a success resets the count
    for _ in range(3):
        assert br.allow()
        br.failure()
    assert br.state is BreakerState.OPEN
    assert not br.allow()
    clock.now += 2.1
    assert br.allow()  # the half-open probe
    assert not br.allow()  # only one probe at a time
    br.failure()
    assert br.state is BreakerState.OPEN
    clock.now += 2.1
    assert br.allow()
    br.success()
    assert br.state is BreakerState.CLOSED
    assert seen == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_decision_codec_round_trip_drops_request_id() -> None:
    d = Decision(
        "req-1",
        "b",
        (CandidateScore("a", 0.1, 0.7, 2.0), CandidateScore("b", 0.5)),
        "ml",
        "v3",
        Source.MODEL,
        "best",
        120,
    )
    back = decode_decision(encode_decision(d))
    assert back.model == "b" and back.router_version == "v3" and back.request_id == ""
    assert back.scores == d.scores
    with pytest.raises(ValueError, match=r"serialized decision|names no model"):
        decode_decision(b"\xff\xff\xff")


def test_feature_codec_is_float32_bytes() -> None:
    f = np.arange(6, dtype=np.float32).reshape(1, 6) / 7
    raw = encode_features(f)
    assert len(raw) == 24
    np.testing.assert_array_equal(decode_features(raw), f)
    with pytest.raises(ValueError, match="not float32"):
        decode_features(b"abc")


def _req(prompt: str, cands: tuple[Candidate, ...], weight: float = 0.0) -> RouteInput:
    return RouteInput("r", cands, prompt=prompt, policy=Policy(cost_weight=weight))


def test_keys_hash_everything_that_changes_the_answer() -> None:
    ab = (Candidate("a", 1.0, 2.0), Candidate("b"))
    base = decision_key("sha1" * 16, _req("What is 2+2?", ab))
    assert base == decision_key("sha1" * 16, _req("What  is 2+2? ", ab[::-1]))
    assert base != decision_key("sha2" * 16, _req("What is 2+2?", ab))
    assert base != decision_key("sha1" * 16, _req("What is 2+2?", ab, weight=0.5))
    assert base != decision_key(
        "sha1" * 16, _req("What is 2+2?", (Candidate("a", 1.0, 3.0), Candidate("b")))
    )
    assert base != decision_key("sha1" * 16, _req("What is 3+3?", ab))
    assert "2+2" not in base
    fk = feature_key("f" * 64, _req("What is 2+2?", ab))
    assert fk.endswith(text_hash("What is 2+2?")) and "What" not in fk
    digest = input_digest(_req("What  is 2+2?", ab))
    assert decision_key("sha1" * 16, _req("x", ab), digest) == base  # the shared hash is used
    assert feature_key("f" * 64, _req("x", ab), digest) == fk


async def test_lru_tier_keeps_values_decoded_and_charges_their_encoded_size() -> None:
    cache = TieredCache(LruCache(100, 10_000), None, Metrics(), decision_ttl_s=60, feature_ttl_s=60)
    d = Decision("r", "b", (CandidateScore("b", 0.5),), "ml", "v", Source.MODEL, "why", 9)
    kept = cache.put_decision("riq:d:k", d)
    assert kept == d and kept.encoded == encode_decision(d)
    hit = await cache.get_decision("riq:d:k")
    assert hit == d and hit is not None and hit.encoded == encode_decision(d)
    assert await cache.get_decision("riq:d:k") is hit  # a hit parses nothing
    assert cache.lru.nbytes == len("riq:d:k") + len(encode_decision(d))
    row = np.ones((1, 4), dtype=np.float32)
    cache.put_features("riq:f:k", row)
    row[0, 0] = 9.0  # the caller's array is not the cached one
    cached = await cache.get_features("riq:f:k")
    assert cached is not None and cached.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert cache.lru.nbytes == len("riq:d:k") + len(encode_decision(d)) + len("riq:f:k") + 16
