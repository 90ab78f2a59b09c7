import numpy as np
import pytest

from router_service.cache.breaker import BreakerState, CircuitBreaker
from router_service.cache.codec import FEATURES, PREDICTIONS
from router_service.cache.keys import feature_key, prediction_key, text_digest, vector_digest
from router_service.cache.lru import LruCache
from router_service.cache.tiered import TieredCache
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


def test_prediction_codec_is_exact_float64_and_read_only() -> None:
    q = np.array([0.1, 1 / 3, np.nan, -0.0], dtype=np.float64)
    raw = PREDICTIONS.encode(q)
    assert len(raw) == 32
    back = PREDICTIONS.decode(raw)
    assert back.tobytes() == q.tobytes()  # bit for bit, NaN and -0.0 included
    assert not back.flags.writeable
    with pytest.raises(ValueError, match="not float64"):
        PREDICTIONS.decode(b"\x00" * 12)


def test_feature_codec_is_float32_bytes() -> None:
    f = np.arange(6, dtype=np.float32).reshape(1, 6) / 7
    raw = FEATURES.encode(f)
    assert len(raw) == 24
    np.testing.assert_array_equal(FEATURES.decode(raw), f)
    with pytest.raises(ValueError, match="not float32"):
        FEATURES.decode(b"abc")


def test_keys_hash_every_input_of_the_entry_and_nothing_else() -> None:
    digest = text_digest("What is 2+2?")
    base = prediction_key("sha1" * 16, "", digest)
    assert base == prediction_key("sha1" * 16, "", text_digest("What is 2+2?"))
    assert base.startswith("riq:p:") and "2+2" not in base
    assert base != prediction_key("sha2" * 16, "", digest)  # another bundle
    assert base != prediction_key("sha1" * 16, "acme", digest)  # another tenant
    assert base != prediction_key("sha1" * 16, "", text_digest("What  is 2+2?"))  # exact text
    assert base != feature_key("sha1" * 16, "", digest)  # kinds never collide
    assert vector_digest([0.1, 0.2]) != vector_digest([0.1, 0.2000001])  # exact, not rounded
    assert vector_digest([0.1]) == vector_digest([np.float32(0.1)])  # the float32 the model sees


def test_keys_are_unambiguous_where_joined_text_would_collide() -> None:
    """Fields are length-prefixed: moving bytes from one field to the next changes the key."""
    d = text_digest("x")
    assert feature_key("ab", "c", d) != feature_key("a", "bc", d)
    assert feature_key("a\x1ft", "", d) != feature_key("a", "\x1ft", d)
    assert prediction_key("s", "tenant\x00", d) != prediction_key("s", "tenant", d)


def test_text_digest_takes_lone_surrogates() -> None:
    assert text_digest("a\ud800b") != text_digest("a\ufffdb")


async def test_lru_tier_keeps_values_decoded_and_charges_their_encoded_size() -> None:
    cache = TieredCache(
        LruCache(100, 10_000), None, Metrics(), ttl_s={"prediction": 60, "features": 60}
    )
    q = np.array([0.5, 0.25], dtype=np.float64)
    cache.put("riq:p:k", q, PREDICTIONS)
    q[0] = 9.0  # the caller's array is not the cached one
    hit = await cache.get("riq:p:k", PREDICTIONS)
    assert hit is not None and hit.tolist() == [0.5, 0.25]
    assert await cache.get("riq:p:k", PREDICTIONS) is hit  # a hit parses nothing
    assert cache.lru.nbytes == len("riq:p:k") + 16
    row = np.ones((1, 4), dtype=np.float32)
    cache.put("riq:f:k", row, FEATURES)
    cached = await cache.get("riq:f:k", FEATURES)
    assert cached is not None and cached.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert cache.lru.nbytes == len("riq:p:k") + 16 + len("riq:f:k") + 16
