"""Decision events: every answered decision (cache hits and fallbacks included) and every
outcome report, recorded off the answer's path for the closed loop (train on your own traffic).

:meth:`DecisionEvents.record` only appends the request and its decision to a bounded buffer; when
the buffer is full the event is dropped and counted (``routeiq_events_dropped_total``), never
waited for. A writer task wakes every ``interval_s`` (or when a batch is full), takes what has
accumulated, turns it into JSON lines on the event loop a slice at a time (between answers) and
hands them to the store in a worker thread — one thread hop per batch, not per event:

* :class:`JsonlStore`: a local file with size-based rotation (``events.jsonl``, ``.1`` … ``.N``);
* :class:`RedisStreamStore`: a Redis stream (``XADD … MAXLEN ~``) many replicas share.

A decision event, one JSON object (no prompt text unless ``retain_prompts`` is on); the lists
after ``candidates`` are aligned with it, one value per candidate (``null`` when unknown)::

    {"type": "decision", "ts": 1796170000.123456, "request_id": "r1", "router": "knn",
     "version": "3", "side": "champion", "tenant": "acme", "labels": {...},
     "model": "a", "source": "MODEL", "latency_us": 412, "propensity": 1.0, "cost_weight": null,
     "candidates": ["a", "b"], "input_price": [0.15, 2.5], "output_price": [0.6, 10.0],
     "quality": [0.74125, 0.80833], "cost": [0.375, 6.25], "score": [0.71, 0.67],
     "prompt_hash": "…32 hex…"}

Predictions are written as float32 (the shortest decimal that reads back as the same value).
Lines are encoded with orjson (about a fifth of the standard library's time: the writer shares
the service's core).

``prompt_hash`` is a keyed BLAKE2b of the normalized prompt (lower case, whitespace collapsed):
the same prompt hashes alike across replicas sharing the key, and the hash cannot be reversed
by trying likely prompts without the key. An outcome event is the ``ReportOutcome`` record with
``"type": "outcome"``; both join by ``request_id``.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

from router_service.domain import CandidateScore, Decision, Outcome, RouteInput
from router_service.telemetry.outcomes import outcome_doc

__all__ = [
    "DecisionEvents",
    "EventStore",
    "JsonlStore",
    "RedisStreamStore",
    "load_or_create_key",
    "prompt_hash",
]

log = logging.getLogger(__name__)

_Event = tuple[float, RouteInput, Decision, str] | tuple[float, Outcome]
_SLICE = 32
"""Events encoded per turn of the event loop (about 0.3 ms): encoding on the loop between
answers, rather than in a thread contending with it for the GIL, costs the answers only the
encoding's own time; the store's write (file or socket I/O) still runs in a worker thread."""


class EventStore(Protocol):
    """Where event lines go; called from a worker thread, one batch at a time."""

    name: str

    def write(self, lines: list[bytes]) -> None: ...

    def close(self) -> None: ...


def load_or_create_key(path: Path) -> bytes:
    """The prompt-hash key in ``path`` (hex), created (mode 0600) when missing."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    try:
        os.link(tmp, path)  # atomic, and fails if another process created the key first
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    finally:
        tmp.unlink()
    return key


def prompt_hash(key: bytes, text: str) -> str:
    normalized = " ".join(text.split()).lower()
    return hashlib.blake2b(normalized.encode(), key=key, digest_size=16).hexdigest()


class JsonlStore:
    """Appends lines to ``path``; past ``max_bytes`` the file becomes ``path.1`` (older files
    shift up to ``path.keep``, the oldest is deleted) and a new one starts."""

    name = "jsonl"

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._keep = keep
        self._size: int | None = None

    def write(self, lines: list[bytes]) -> None:
        data = b"\n".join(lines) + b"\n"
        if self._size is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = self.path.stat().st_size if self.path.exists() else 0
        if self._size and self._size + len(data) > self._max_bytes:
            self._rotate()
        with self.path.open("ab") as fh:
            fh.write(data)
        self._size += len(data)

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{self._keep}")
        oldest.unlink(missing_ok=True)
        for i in range(self._keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self._keep > 0:
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._size = 0

    def close(self) -> None:
        pass


class RedisStreamStore:
    """``XADD stream MAXLEN ~ maxlen * e <line>`` per event, pipelined per batch."""

    name = "redis"

    def __init__(self, client: Any, stream: str, maxlen: int) -> None:
        self._client = client
        self.stream = stream
        self._maxlen = maxlen

    def write(self, lines: list[bytes]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(self.stream, {"e": line}, maxlen=self._maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        self._client.close()


class DecisionEvents:
    """The bounded buffer, the writer task and the store (see the module's doc)."""

    def __init__(
        self,
        store: EventStore,
        *,
        hash_key: bytes,
        retain_prompts: bool = False,
        buffer: int = 50_000,
        batch: int = 2_000,
        interval_s: float = 0.1,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self._key = hash_key
        self._retain = retain_prompts
        self._buffer: collections.deque[_Event] = collections.deque()
        self._max = buffer
        self._batch = batch
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._writing = False
        self._on_dropped = on_dropped
        self._on_written = on_written
        self.dropped = 0
        self.written = 0

    # -- the answer's path: append or drop, nothing else -----------------------------------
    def record(self, req: RouteInput, decision: Decision, side: str) -> None:
        self._put((time.time(), req, decision, side))

    def record_outcome(self, outcome: Outcome) -> None:
        self._put((time.time(), outcome))

    def _put(self, event: _Event) -> None:
        if len(self._buffer) < self._max:
            self._buffer.append(event)
            return
        self.dropped += 1
        if self._on_dropped is not None:
            self._on_dropped(1)

    # -- the writer ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="decision-events")

    async def _run(self) -> None:
        while not self._closing or self._buffer:
            if len(self._buffer) < self._batch and not self._closing:
                await asyncio.sleep(self._interval_s)
            if self._buffer:
                await self._write_some()

    async def _write_some(self) -> None:
        n = min(len(self._buffer), self._batch)
        events = [self._buffer.popleft() for _ in range(n)]
        self._writing = True
        try:
            lines = []
            for start in range(0, n, _SLICE):  # on the loop, a slice at a time (see _SLICE)
                lines += [self._line(e) for e in events[start : start + _SLICE]]
                await asyncio.sleep(0)
            written = await asyncio.to_thread(self._write, lines)
        except Exception as exc:  # a failing store loses this batch, never the service
            log.warning("%d event(s) not written to %s: %s", n, self.store.name, exc)
            self.dropped += n
            if self._on_dropped is not None:
                self._on_dropped(n)
            return
        finally:
            self._writing = False
        self.written += written
        if self._on_written is not None:
            self._on_written(written)

    def _write(self, lines: list[bytes]) -> int:
        self.store.write(lines)
        return len(lines)

    def _line(self, event: _Event) -> bytes:
        if len(event) == 2:
            ts, outcome = event
            return orjson.dumps({"type": "outcome", **outcome_doc(outcome, ts)})
        ts, req, decision, side = event
        doc = _decision_doc(ts, req, decision, side)
        text = req.text()
        if text:
            doc["prompt_hash"] = prompt_hash(self._key, text)
            if self._retain:
                doc["prompt"] = text
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what was recorded so far, then stop the writer and close the store."""
        if self._task is None:
            return
        self._closing = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.error("decision events: %d not written within %.1f s", len(self._buffer), timeout_s)
            self._task.cancel()
        self._task = None
        await asyncio.to_thread(self.store.close)

    async def flush(self) -> None:
        """Wait until what was recorded so far is written (tests, benchmarks)."""
        while self._buffer or self._writing:
            if self._task is None:
                await self._write_some()
            else:
                await asyncio.sleep(0.005)


def _decision_doc(ts: float, req: RouteInput, decision: Decision, side: str) -> dict[str, Any]:
    cands, scores = req.candidates, decision.scores
    return {
        "type": "decision",
        "ts": round(ts, 6),
        "request_id": decision.request_id,
        "router": decision.router,
        "version": decision.router_version,
        "side": side,
        "tenant": req.tenant,
        "labels": dict(req.labels),
        "model": decision.model,
        "source": decision.source.name,
        "latency_us": decision.latency_us,
        "propensity": decision.propensity,
        "cost_weight": req.policy.cost_weight,
        "candidates": [c.name for c in cands],
        "input_price": [c.input_price for c in cands],
        "output_price": [c.output_price for c in cands],
    } | _scores(scores)


def _scores(scores: Sequence[CandidateScore]) -> dict[str, npt.NDArray[np.float32]]:
    """Each score's quality, cost and score as float32 (predictions are float32: the shortest
    decimal that reads back as the same float32 carries all they hold), NaN, ±inf and missing
    as null: one array, serialised by orjson in Rust — a quarter of the time of rounding 27
    floats in Python, on the answer path's event loop."""
    table = np.array(  # None becomes NaN
        [(s.quality, s.cost, s.score) for s in scores], dtype=np.float32
    ).reshape(-1, 3)
    columns = np.ascontiguousarray(table.T)  # orjson serialises C-contiguous arrays only
    return dict(zip(("quality", "cost", "score"), columns, strict=True))
