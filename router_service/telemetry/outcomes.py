"""Outcome reports persisted to a JSONL file, one object per line.

Writes never happen on the event loop: reports go into a bounded queue that a writer task
drains in batches through a worker thread. A full queue is :class:`Overloaded` (the caller
retries; nothing is dropped silently). ``close()`` drains what was accepted before returning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Protocol

from router_service.domain import Outcome
from router_service.errors import Overloaded

__all__ = ["JsonlOutcomeSink", "JsonlSink", "OutcomeSink", "outcome_doc"]

log = logging.getLogger(__name__)


class OutcomeSink(Protocol):
    def submit(self, outcome: Outcome) -> None: ...

    async def close(self) -> None: ...


def outcome_doc(outcome: Outcome, ts: float) -> dict[str, object]:
    """One outcome report as a JSON object (the outcome file's line, and the outcome event's
    fields), received at UNIX time ``ts``."""
    return {
        "ts": round(ts, 6),
        "request_id": outcome.request_id,
        "model": outcome.model,
        "quality": outcome.quality,
        "latency_ms": outcome.latency_ms,
        "cost_usd": outcome.cost_usd,
        "failed": outcome.failed,
        "router": outcome.router,
        "labels": dict(outcome.labels),
    }


def _record(outcome: Outcome) -> str:
    return json.dumps(outcome_doc(outcome, time.time()), separators=(",", ":"))


class JsonlSink:
    """Appends JSON lines to ``path`` (created with its parent directory on first write)."""

    what = "line"

    def __init__(self, path: Path, queue_size: int = 10_000, batch: int = 512) -> None:
        self._path = path
        self._batch = batch
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"writer-{self._path.name}")

    def submit_line(self, line: str) -> None:
        """Accept one line; raises :class:`Overloaded` when the queue is full."""
        try:
            self._queue.put_nowait(line)
        except asyncio.QueueFull:
            raise Overloaded(f"{self.what} queue is full; retry later") from None

    async def _run(self) -> None:
        while True:
            lines = [await self._queue.get()]
            while len(lines) < self._batch and not self._queue.empty():
                lines.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._append, lines)
            except OSError:
                log.exception("could not write %d line(s) to %s", len(lines), self._path)
            finally:
                for _ in lines:
                    self._queue.task_done()

    def _append(self, lines: list[str]) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        self.written += len(lines)

    async def flush(self, timeout_s: float = 5.0) -> None:
        await asyncio.wait_for(self._queue.join(), timeout_s)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write everything accepted so far, then stop the writer."""
        if self._task is None:
            return
        try:
            await self.flush(timeout_s)
        except TimeoutError:
            log.error("writer of %s did not drain within %.1f s", self._path, timeout_s)
        self._task.cancel()
        self._task = None


class JsonlOutcomeSink(JsonlSink):
    """Outcome reports, one JSON object per line (no prompt text: there is none to write)."""

    what = "outcome"

    def submit(self, outcome: Outcome) -> None:
        """Accept one outcome; raises :class:`Overloaded` when the queue is full."""
        self.submit_line(_record(outcome))
