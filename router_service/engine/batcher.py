"""Micro-batching of learned-router inference: featurize + predict as one executor job.

Concurrent misses for the same router are collected while earlier jobs run and go out as one
batch (up to ``max_batch`` requests), so under load a featurizer and a router graph run once
per batch instead of once per request, and the event loop hands work to the thread pool once
per batch. There is no timer: at low load a request starts in the same event-loop turn and
waits for nobody; a batch forms from requests that arrive in the same turn (a ``RouteBatch``,
or calls read from the network together) or while ``max_running`` jobs are already busy.

A request's offload limit is its own, so a long prompt must not make its batch-mates slow:
waiting requests go out shortest first, and a batch holds at most ``max_batch_chars``
characters of text (a longer text runs alone). Short prompts never wait inside a long one's job.

A job takes, per request, either a text (featurized in the job) or a feature row (the client's
embedding, or a feature-cache hit), and returns the feature rows and the predicted quality
rows. Featurizers whose output depends on batch-mates (int8 MiniLM: activations are quantized
per batch) declare ``batch_invariant = False`` and get one text per call inside the job, so a
prompt's features never depend on what else was in flight.

Handing a job to the pool and back costs a few hundred µs of CPU here, as much as a whole TF-IDF
job; so when recent jobs of a router took less than ``inline_below_us`` and the texts are short,
the job runs on the event loop itself (it cannot block it for long), and otherwise in the pool
under the engine's timeout. Slow featurizers (MiniLM) always use the pool.

With a tracer, each job is a ``routeiq.inference_job`` span (batch size, inline or pool) with
``routeiq.featurize`` and ``routeiq.model`` children, linked from every request's span in the
batch; its parent is the first sampled request's span, so a sampled request's trace holds it.

When a batch fails, each of its requests is retried alone, so one input the featurizer cannot
take fails only its own request (which the engine answers from the fallback).

Under sustained overload a request would only wait out its time budget and then be answered by
the fallback anyway; ``infer`` sheds it at once instead (:class:`Overloaded`, with the numbers
in its message) when the work queued ahead of it — requests waiting and in running jobs, times
the recent time per request, spread over ``max_running`` jobs — already exceeds its budget.
Nothing is shed before the first job has been timed, nor when nothing is queued or running
(so a router that was slow once is tried again, and its estimate recovers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from router_service.featurizers.base import Featurizer
from router_service.strategies.base import Features

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, Tracer

__all__ = ["Inference", "InferenceBatcher", "Overloaded"]

INLINE_MAX_CHARS = 4096
"""Jobs whose texts add up to more characters than this always go to the pool."""

Predict = Callable[[Features], npt.NDArray[np.float64]]
_NO_SPAN: AbstractContextManager[Any] = contextlib.nullcontext()


class Overloaded(Exception):
    """Raised by :meth:`InferenceBatcher.infer` instead of queueing a request that could not
    be answered within its budget; the message (no prompt text) says why."""


@dataclass(frozen=True, slots=True)
class Inference:
    """One request's result: its feature row ``[1, dim]`` and, with a predictor, its quality
    per model ``[n_models]`` (``None`` without one)."""

    features: Features
    quality: npt.NDArray[np.float64] | None


Job = asyncio.Future[list[Inference | Exception]]


@dataclass(slots=True)
class _Item:
    text: str | None
    features: Features | None
    future: asyncio.Future[Inference]
    chars: int
    queued: float  # time.perf_counter() when it joined the queue
    context: SpanContext | None = None  # the request's span, with a tracer


class InferenceBatcher:
    """Batches ``infer`` calls for one router. ``executor=None`` runs each job inline;
    ``on_batch`` is told each job's size and ``on_queue_wait`` each request's seconds in the
    queue before its job started (for metrics). With ``inline_below_us`` > 0, a job
    runs on the event loop instead of the pool while recent jobs took less than that many
    µs and its texts are short (``INLINE_MAX_CHARS``)."""

    def __init__(
        self,
        featurizer: Featurizer | None,
        predict: Predict | None,
        executor: Executor | None,
        *,
        max_batch: int = 32,
        max_batch_chars: int = 16_384,
        max_running: int = 1,
        on_batch: Callable[[int], None] | None = None,
        on_queue_wait: Callable[[float], None] | None = None,
        inline_below_us: float = 0.0,
        tracer: Tracer | None = None,
    ) -> None:
        self._featurizer = featurizer
        self._tracer = tracer
        self._inline_below_us = inline_below_us
        self._job_us = math.inf  # moving average of recent job times; unknown before the first
        self._item_us = math.inf  # the same per request of the job
        self._on_batch = on_batch
        self._on_queue_wait = on_queue_wait
        self._predict = predict
        self._executor = executor
        self._max_batch = max_batch
        self._max_chars = max_batch_chars
        self._max_running = max_running
        self._queue: list[_Item] = []
        self._running = 0
        self._running_items = 0
        self._scheduled = False
        self.batches = 0
        """Jobs run so far (with :attr:`items`, the mean batch size; for tests and metrics)."""
        self.items = 0
        self.inline_jobs = 0

    async def infer(
        self, text: str | None, features: Features | None, budget_s: float | None = None
    ) -> Inference:
        """Features and predicted quality for one request: give ``text`` or ``features``.

        Cancelling the await (e.g. a timeout) drops the request from a batch not yet started;
        a batch already running finishes and its answer for this request is discarded. With a
        ``budget_s``, raises :class:`Overloaded` at once when the work ahead exceeds it.
        """
        if (text is None) == (features is None):
            raise ValueError("give exactly one of text and features")
        waiting = len(self._queue) + self._running_items
        if budget_s is not None and waiting and (ahead_us := self._ahead_us()) > budget_s * 1e6:
            raise Overloaded(
                f"shed: {waiting} requests ahead, about {ahead_us / 1000:.0f} ms of work for a "
                f"{budget_s * 1000:.0f} ms budget"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Inference] = loop.create_future()
        chars = len(text) if text is not None else 0
        item = _Item(text, features, future, chars, time.perf_counter())
        if self._tracer is not None:
            item.context = _current_span_context()
        self._queue.append(item)
        if not self._scheduled:  # dispatch at the end of this loop turn, with its arrivals
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def _ahead_us(self) -> float:
        """Estimated µs until a request queued now is answered (0 before any job was timed)."""
        if math.isinf(self._item_us):
            return 0.0
        ahead = len(self._queue) + self._running_items + 1
        return ahead * self._item_us / self._max_running

    def _dispatch(self) -> None:
        self._scheduled = False
        while self._queue and self._running < self._max_running:
            batch = self._take()
            if not batch:
                continue
            self.batches += 1
            self.items += len(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch))
            if self._on_queue_wait is not None:
                now = time.perf_counter()
                for item in batch:
                    self._on_queue_wait(now - item.queued)
            span = None if self._tracer is None else self._job_span(batch)
            texts, rows = [item.text for item in batch], [item.features for item in batch]
            job = self._submit(texts, rows, span)
            if span is not None:
                _end_with(span, job)
            if job.done():
                self._settle(batch, job)
                continue
            self._running += 1
            self._running_items += len(batch)
            job.add_done_callback(functools.partial(self._finished, batch))

    def _take(self) -> list[_Item]:
        """The next batch: waiting requests shortest first, up to ``max_batch`` of them and
        ``max_batch_chars`` characters of text (a longer text goes alone). Requests whose
        caller gave up are dropped."""
        waiting = sorted((i for i in self._queue if not i.future.done()), key=lambda i: i.chars)
        size = chars = 0
        for item in waiting:
            if size == self._max_batch or (size and chars + item.chars > self._max_chars):
                break
            size += 1
            chars += item.chars
        self._queue = waiting[size:]
        return waiting[:size]

    def _submit(
        self, texts: list[str | None], rows: list[Features | None], span: Span | None
    ) -> Job:
        if self._executor is None or self._inline(texts):
            self.inline_jobs += 1
            if span is not None:
                span.set_attribute("routeiq.inline", True)
            return _completed(functools.partial(self._run, texts, rows, span))
        try:
            return asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, texts, rows, span
            )
        except RuntimeError as exc:  # the pool is shut down: the server is stopping
            return _completed(functools.partial(_reraise, exc))

    def _inline(self, texts: list[str | None]) -> bool:
        """Run on the event loop: recent jobs took less than ``inline_below_us`` (a hop to the
        pool and back costs about as much as a TF-IDF job) and the texts are short."""
        if self._job_us >= self._inline_below_us:
            return False
        return sum(len(t) for t in texts if t is not None) <= INLINE_MAX_CHARS

    def _timed(self, started: float, items: int) -> None:
        took = (time.perf_counter() - started) * 1e6
        self._job_us = took if math.isinf(self._job_us) else 0.8 * self._job_us + 0.2 * took
        each = took / max(items, 1)
        self._item_us = each if math.isinf(self._item_us) else 0.8 * self._item_us + 0.2 * each

    def _finished(self, batch: list[_Item], job: Job) -> None:
        self._running -= 1
        self._running_items -= len(batch)
        self._settle(batch, job)
        self._dispatch()

    @staticmethod
    def _settle(batch: list[_Item], job: Job) -> None:
        error = job.exception() if not job.cancelled() else asyncio.CancelledError()
        results = job.result() if error is None else None
        for i, item in enumerate(batch):
            if item.future.done():
                continue
            result = results[i] if results is not None else error
            if isinstance(result, Inference):
                item.future.set_result(result)
            else:
                item.future.set_exception(result or RuntimeError("inference job failed"))

    def _job_span(self, batch: list[_Item]) -> Span | None:
        """A job's span: a child of the first sampled request's span, linked from them all;
        none when no request in the batch is sampled."""
        from opentelemetry import trace  # noqa: PLC0415 - tracing on only

        assert self._tracer is not None
        contexts = [i.context for i in batch if i.context is not None and i.context.is_valid]
        parent = next((c for c in contexts if c.trace_flags.sampled), None)
        if parent is None:
            return None
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        return self._tracer.start_span(
            "routeiq.inference_job",
            context=ctx,
            links=[trace.Link(c) for c in contexts],
            attributes={"routeiq.batch_size": len(batch), "routeiq.inline": False},
        )

    def _stage(self, job: Span | None, name: str) -> AbstractContextManager[Any]:
        """A span under the job's (in the pool thread); a shared no-op without a tracer."""
        if job is None or self._tracer is None:
            return _NO_SPAN
        from opentelemetry import trace  # noqa: PLC0415 - tracing on only

        return self._tracer.start_as_current_span(name, context=trace.set_span_in_context(job))

    def _run(
        self, texts: Sequence[str | None], rows: Sequence[Features | None], span: Span | None = None
    ) -> list[Inference | Exception]:
        """The job (in a pool thread). When the batch fails and has several requests, each is
        retried alone, so one bad input fails only its own request."""
        started = time.perf_counter()
        try:
            return list(self._run_batch(texts, rows, span))
        except Exception as exc:
            if len(texts) == 1:
                raise
            first: Exception = exc
        finally:
            self._timed(started, len(texts))
        out: list[Inference | Exception] = []
        for text, row in zip(texts, rows, strict=True):
            try:
                out += self._run_batch([text], [row], span)
            except Exception as exc:  # this request's own failure
                out.append(exc)
        if all(isinstance(r, Exception) for r in out):
            raise first
        return out

    def _run_batch(
        self, texts: Sequence[str | None], rows: Sequence[Features | None], span: Span | None
    ) -> list[Inference]:
        """Featurize the texts, stack all rows, predict once."""
        todo = [i for i, t in enumerate(texts) if t is not None]
        made: dict[int, Features] = {}
        if todo:
            featurizer = self._featurizer
            if featurizer is None:
                raise RuntimeError("text given to a router without a featurizer")
            texts_todo = [texts[i] or "" for i in todo]
            with self._stage(span, "routeiq.featurize"):
                made = dict(zip(todo, self._featurize(featurizer, texts_todo), strict=True))
        X = np.vstack([made[i] if i in made else _row(rows[i]) for i in range(len(texts))])
        X = np.ascontiguousarray(X, dtype=np.float32)
        quality = None
        if self._predict is not None:
            with self._stage(span, "routeiq.model"):
                quality = self._predict(X)
        if quality is not None and quality.shape[0] != len(texts):
            raise ValueError(f"router gave {quality.shape[0]} rows for {len(texts)} inputs")
        return [
            Inference(X[i : i + 1], None if quality is None else quality[i])
            for i in range(len(texts))
        ]

    @staticmethod
    def _featurize(featurizer: Featurizer, texts: list[str]) -> list[Features]:
        if featurizer.batch_invariant:
            out = featurizer.featurize(texts)
            if out.shape[0] != len(texts):
                raise ValueError(f"featurizer gave {out.shape[0]} rows for {len(texts)} texts")
            return [out[i : i + 1] for i in range(len(texts))]
        return [featurizer.featurize([t]) for t in texts]


def _row(features: Features | None) -> Features:
    if features is None:
        raise ValueError("an input has neither text nor features")
    return features


def _current_span_context() -> SpanContext:
    from opentelemetry import trace  # noqa: PLC0415 - tracing on only

    return trace.get_current_span().get_span_context()


def _end_with(span: Span, job: Job) -> None:
    """End ``span`` when ``job`` is done (now, for a job that ran inline)."""

    def end(done: Job) -> None:
        if done.cancelled() or done.exception() is not None:
            from opentelemetry.trace import StatusCode  # noqa: PLC0415 - tracing on only

            span.set_status(StatusCode.ERROR)
        span.end()

    if job.done():
        end(job)
    else:
        job.add_done_callback(end)


def _reraise(exc: Exception) -> list[Inference | Exception]:
    raise exc


def _completed(call: Callable[[], list[Inference | Exception]]) -> Job:
    """Run ``call`` now; its outcome in a finished future (the same shape as a pool job)."""
    done: Job = asyncio.get_running_loop().create_future()
    try:
        done.set_result(call())
    except Exception as exc:
        done.set_exception(exc)
    return done
