"""Micro-batching of learned-router inference (router_service.engine.batcher)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from router_service.bundles.base import LoadedRouter, RouterTable
from router_service.config import LimitsSettings
from router_service.domain import Candidate, RouteInput, Source
from router_service.engine.batcher import INLINE_MAX_CHARS, InferenceBatcher, Overloaded
from router_service.engine.engine import DecisionEngine
from router_service.engine.health import ModelHealth
from router_service.metrics import Metrics
from router_service.strategies.static import Fallback
from tests.support.learned import CountingFeaturizer

F32 = npt.NDArray[np.float32]


class GatedFeaturizer:
    """Row i of a call is [len(text), 1]; the first call blocks until ``gate`` is set, so the
    test controls which requests arrive while a job is busy. Records each call's texts."""

    name = "gated"
    sha256 = "9" * 64
    dim = 2
    input_kind = "text"

    def __init__(self, batch_invariant: bool = True) -> None:
        self.batch_invariant = batch_invariant
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls: list[list[str]] = []
        self.broken = False

    def featurize(self, texts: Sequence[str]) -> F32:
        self.calls.append(list(texts))
        self.started.set()
        self.gate.wait(5)
        if self.broken:
            raise RuntimeError("featurizer broke")
        if "bad" in texts:
            raise ValueError("cannot featurize that one")
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def double(X: F32) -> npt.NDArray[np.float64]:
    return np.asarray(X, dtype=np.float64) * 2


async def _wait(event: threading.Event) -> None:
    await asyncio.get_running_loop().run_in_executor(None, event.wait, 5)


async def test_requests_arriving_while_a_job_runs_go_out_as_one_batch() -> None:
    feat = GatedFeaturizer()
    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, double, pool, max_batch=32, max_running=1)
        first = asyncio.ensure_future(batcher.infer("a", None))
        await _wait(feat.started)  # job 1 is running with one text
        rest = [asyncio.ensure_future(batcher.infer("x" * n, None)) for n in range(2, 12)]
        await asyncio.sleep(0.01)
        assert len(feat.calls) == 1  # the others wait for the busy job, none started
        feat.gate.set()
        results = await asyncio.gather(first, *rest)
    assert [len(c) for c in feat.calls] == [1, 10]
    assert (batcher.batches, batcher.items) == (2, 11)
    for n, res in zip([1, *range(2, 12)], results, strict=True):  # each gets its own row
        assert res.features.tolist() == [[float(n), 1.0]]
        assert res.quality is not None and res.quality.tolist() == [2.0 * n, 2.0]


async def test_same_turn_arrivals_share_a_job_and_max_batch_splits_them() -> None:
    feat = GatedFeaturizer()
    feat.gate.set()
    with ThreadPoolExecutor(2) as pool:
        batcher = InferenceBatcher(feat, double, pool, max_batch=4, max_running=2)
        results = await asyncio.gather(*(batcher.infer("y" * n, None) for n in range(1, 11)))
    assert sorted(len(c) for c in feat.calls) == [2, 4, 4]
    assert [r.features[0, 0] for r in results] == list(range(1, 11))


async def test_one_request_at_a_time_is_never_held_back() -> None:
    feat = GatedFeaturizer()
    feat.gate.set()
    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, double, pool)
        for n in range(1, 4):
            assert (await batcher.infer("z" * n, None)).features[0, 0] == n
    assert feat.calls == [["z"], ["zz"], ["zzz"]]


async def test_batch_dependent_featurizer_is_called_one_text_at_a_time() -> None:
    feat = GatedFeaturizer(batch_invariant=False)
    feat.gate.set()
    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, double, pool)
        await asyncio.gather(*(batcher.infer(t, None) for t in ["a", "bb", "ccc"]))
    assert batcher.batches == 1  # one job, one prediction for all three ...
    assert feat.calls == [["a"], ["bb"], ["ccc"]]  # ... but one featurizer call per text


async def test_given_feature_rows_and_texts_are_predicted_together_in_order() -> None:
    feat = GatedFeaturizer()
    feat.gate.set()
    seen: list[F32] = []

    def predict(X: F32) -> npt.NDArray[np.float64]:
        seen.append(X.copy())
        return double(X)

    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, predict, pool)
        given = np.array([[7.0, 7.0]], dtype=np.float32)
        _, b, _ = await asyncio.gather(
            batcher.infer("aa", None), batcher.infer(None, given), batcher.infer("b", None)
        )
    assert feat.calls == [["b", "aa"]]  # only the texts are featurized, shortest first
    assert seen[0].tolist() == [[7, 7], [1, 1], [2, 1]]
    assert b.quality is not None and b.quality.tolist() == [14.0, 14.0]
    with pytest.raises(ValueError, match="exactly one"):
        await batcher.infer("t", given)


async def test_a_failing_featurizer_fails_the_batch_and_the_next_job_runs() -> None:
    feat = GatedFeaturizer()
    feat.gate.set()
    feat.broken = True
    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, double, pool)
        outcomes = await asyncio.gather(
            batcher.infer("a", None), batcher.infer("b", None), return_exceptions=True
        )
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        feat.broken = False
        assert (await batcher.infer("ok", None)).features[0, 0] == 2


async def test_one_bad_input_fails_only_its_own_request() -> None:
    feat = GatedFeaturizer()
    feat.gate.set()
    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, double, pool)
        good1, bad, good2 = await asyncio.gather(
            batcher.infer("a", None),
            batcher.infer("bad", None),
            batcher.infer("cc", None),
            return_exceptions=True,
        )
    assert isinstance(bad, ValueError)
    assert not isinstance(good1, BaseException) and good1.features[0, 0] == 1
    assert not isinstance(good2, BaseException) and good2.features[0, 0] == 2
    assert feat.calls == [["a", "cc", "bad"], ["a"], ["cc"], ["bad"]]  # the batch, then alone


async def test_a_cancelled_waiting_request_is_dropped_from_its_batch() -> None:
    feat = GatedFeaturizer()
    with ThreadPoolExecutor(1) as pool:
        batcher = InferenceBatcher(feat, double, pool)
        first = asyncio.ensure_future(batcher.infer("a", None))
        await _wait(feat.started)
        gone = asyncio.ensure_future(batcher.infer("gone", None))
        kept = asyncio.ensure_future(batcher.infer("kept", None))
        await asyncio.sleep(0.01)
        gone.cancel()
        feat.gate.set()
        await first
        assert (await kept).features[0, 0] == 4
    assert feat.calls == [["a"], ["kept"]]


def _engine(
    router: LoadedRouter, pool: ThreadPoolExecutor, metrics: Metrics, **options: Any
) -> DecisionEngine:
    """An engine serving ``router`` (as ``ml``, the default) with the pool and ``options``."""
    engine = DecisionEngine(
        LimitsSettings(), Fallback(), ModelHealth(30), executor=pool, metrics=metrics, **options
    )
    engine.install(RouterTable(routers={"ml": router}, default="ml"))
    return engine


async def test_engine_batches_concurrent_misses_and_answers_each_request() -> None:
    feat = CountingFeaturizer(delay_s=0.02)
    cands = tuple(Candidate(n) for n in ("m0", "m1", "m2"))
    router = LoadedRouter(
        name="ml",
        kind="argmax",
        version="1",
        strategy=_Argmax(),  # type: ignore[arg-type]
        featurizer=feat,
        sha256="ab" * 32,
    )
    metrics = Metrics()
    with ThreadPoolExecutor(1) as pool:
        engine = _engine(router, pool, metrics, offload_timeout_s=5.0)
        reqs = [RouteInput(f"r{i}", cands, prompt=f"prompt {i}") for i in range(40)]
        decisions = await asyncio.gather(*(engine.route(r) for r in reqs))
        batched = await engine.route_batch(
            [RouteInput(f"b{i}", cands, prompt=f"other {i}") for i in range(16)]
        )
    ref = CountingFeaturizer()
    expect = [cands[int(np.argmax(ref.featurize([r.text()])[0][:3]))].name for r in reqs]
    assert [d.model for d in decisions] == expect
    assert all(d.source == Source.MODEL for d in [*decisions, *batched])
    assert [d.request_id for d in batched] == [f"b{i}" for i in range(16)]
    # 40 concurrent misses: one alone, the rest in jobs of <= 32; the RouteBatch in one job
    assert feat.calls <= 5
    jobs = {"router": "ml"}
    assert metrics.sample("routeiq_inference_batch_size_count", jobs) == feat.calls
    assert metrics.sample("routeiq_inference_batch_size_sum", jobs) == 40 + 16


class _Argmax:
    """A scored strategy: quality = the first three features; picks the highest."""

    kind = "argmax"
    needs_features = True
    blocking = False

    def predict_batch(self, features: F32) -> npt.NDArray[np.float64]:
        return np.asarray(features[:, :3], dtype=np.float64)

    def choose_scored(
        self, request: RouteInput, quality: npt.NDArray[np.float64], health: object
    ) -> object:
        from router_service.domain import Choice
        from router_service.strategies.base import onehot_scores

        name = request.candidates[int(np.argmax(quality))].name
        return Choice(name, onehot_scores(request.candidates, name), "argmax")

    def choose(self, request: RouteInput, features: F32 | None, health: object) -> object:
        assert features is not None
        return self.choose_scored(request, self.predict_batch(features), health)


class ThreadRecorder:
    """Records the thread each featurize call runs on; sleeps ``delay_s`` per call."""

    name = "threads"
    sha256 = "7" * 64
    dim = 2
    batch_invariant = True
    input_kind = "text"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.threads: list[int] = []

    def featurize(self, texts: Sequence[str]) -> F32:
        self.threads.append(threading.get_ident())
        if self.delay_s:
            time.sleep(self.delay_s)
        return np.ones((len(texts), 2), dtype=np.float32)


async def test_fast_jobs_move_onto_the_event_loop_and_slow_or_long_ones_stay_in_the_pool() -> None:
    loop_thread = threading.get_ident()
    fast, slow = ThreadRecorder(), ThreadRecorder(delay_s=0.03)
    with ThreadPoolExecutor(1) as pool:
        fast_b = InferenceBatcher(fast, double, pool, inline_below_us=20_000)
        slow_b = InferenceBatcher(slow, double, pool, inline_below_us=20_000)
        for _ in range(4):
            await fast_b.infer("short", None)
            await slow_b.infer("short", None)
        await fast_b.infer("x" * (INLINE_MAX_CHARS + 1), None)
        never = InferenceBatcher(ThreadRecorder(), double, pool, inline_below_us=0)
        await never.infer("short", None)
    # the first job is timed in the pool; then the fast router's jobs run on the loop
    assert fast.threads[0] != loop_thread
    assert fast.threads[1:4] == [loop_thread] * 3
    assert fast.threads[4] != loop_thread  # a long text goes to the pool whatever the timing
    assert loop_thread not in slow.threads  # 30 ms jobs never leave the pool
    assert (fast_b.inline_jobs, slow_b.inline_jobs, never.inline_jobs) == (3, 0, 0)


class _SlowPerText(CountingFeaturizer):
    """Costs ``delay_s`` per text (a slow encoder), so a job's time grows with its batch."""

    def featurize(self, texts: Sequence[str]) -> F32:
        time.sleep(self.delay_s * len(texts))
        self.calls += 1
        return np.ones((len(texts), self.dim), dtype=np.float32)


async def test_overload_is_shed_at_once_with_its_numbers() -> None:
    feat = _SlowPerText(delay_s=0.03)
    with ThreadPoolExecutor(1) as pool:
        b = InferenceBatcher(feat, None, pool, max_batch=1, max_running=1)
        await b.infer("warm-up", None, budget_s=0.1)  # nothing is shed before a timed job
        tasks = [asyncio.create_task(b.infer(f"t{i}", None, budget_s=0.1)) for i in range(8)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
    shed = [r for r in results if isinstance(r, Overloaded)]
    answered = [r for r in results if not isinstance(r, BaseException)]
    # ~30 ms per request, one at a time: only the first few fit in 100 ms; the rest go at once
    assert 1 <= len(answered) <= 3 and len(shed) == 8 - len(answered)
    assert all(not isinstance(r, BaseException) for r in results[: len(answered)])
    message = str(shed[0])
    assert message.startswith("shed: ") and "ms of work for a 100 ms budget" in message
    assert feat.calls == 1 + len(answered)  # shed requests never reached the featurizer


async def test_the_engine_answers_shed_requests_from_the_fallback_and_counts_them() -> None:
    # 80 ms per text, a 200 ms budget: the second request (1 ahead, done at ~160 ms) runs with
    # 40 ms to spare on a loaded machine; from the third on (≥ 240 ms of work) all are shed.
    feat = _SlowPerText(delay_s=0.08)
    cands = tuple(Candidate(n) for n in ("m0", "m1", "m2"))
    router = LoadedRouter("ml", "argmax", "1", _Argmax(), feat, sha256="ab" * 32)  # type: ignore[arg-type]
    metrics = Metrics()
    with ThreadPoolExecutor(1) as pool:
        engine = _engine(router, pool, metrics, offload_timeout_s=0.2, max_batch=1, max_running=1)
        await engine.route(RouteInput("warm", cands, prompt="warm-up"))
        reqs = [RouteInput(f"r{i}", cands, prompt=f"prompt {i}") for i in range(8)]
        decisions = await asyncio.gather(*(engine.route(r) for r in reqs))
    shed = [d for d in decisions if d.source == Source.FALLBACK]
    assert shed and all("ml failed (shed: " in d.reason for d in shed)
    assert any(d.source == Source.MODEL for d in decisions)
    assert metrics.sample("routeiq_shed_total", {"router": "ml"}) == len(shed)


async def test_a_router_that_was_slow_once_is_tried_again_when_idle() -> None:
    feat = _SlowPerText(delay_s=0.05)
    with ThreadPoolExecutor(1) as pool:
        b = InferenceBatcher(feat, None, pool, max_batch=1, max_running=1)
        await b.infer("slow", None, budget_s=0.01)  # nothing queued: runs, and takes 50 ms
        feat.delay_s = 0.0
        await b.infer("fast now", None, budget_s=0.01)  # idle again: not shed on the old figure
    assert feat.calls == 2
