"""The service's own telemetry as training data: decision events joined with outcome reports.

A decision event records what one router answered (the candidates with their prices, the
model chosen, the router's predicted quality and score per candidate, the probability with
which the chosen model was picked — below 1 only when the router explores) and, when the
operator turned on ``telemetry.retain_prompts``, the prompt. An outcome report (``ReportOutcome``)
says how the chosen model's answer went; both carry the request id (see
:mod:`router_service.telemetry.events`).

Joined, they are *logged bandit feedback*: for each request the quality of one model only —
the one that answered. :class:`LoggedFeedback` keeps exactly that, and nothing invented for
the models that did not answer.

Sources (:func:`read_events`): a JSONL file (with its rotated siblings ``FILE.1`` … ``FILE.N``,
oldest first), a directory (every ``*.jsonl`` / ``*.jsonl.N`` file in it: the per-worker files
of ``--workers N``; lines that are not events, such as the outcome file's, are skipped), or a
Redis stream ``redis://host:port/db?stream=NAME`` (default ``routeiq:events``).

Without ``retain_prompts`` the events hold only a keyed hash of each prompt; an operator who
keeps the prompts elsewhere (their application's own logs) can join them back by that hash
with the service's key (:func:`load_prompt_store`), so the events need never hold the text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import orjson

from router_service.telemetry.events import prompt_hash

__all__ = ["JoinStats", "LoggedFeedback", "join_feedback", "load_prompt_store", "read_events"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

DEFAULT_STREAM = "routeiq:events"
_ROTATED = re.compile(r"\.jsonl(\.(\d+))?$")
NO_PROMPT = "no_prompt (telemetry.retain_prompts off, and not in --prompts)"
_LEARNED = ("MODEL", "CACHE")
"""Sources of decisions the router's policy made (fallbacks and static answers are not)."""


def _rotations(path: Path) -> list[Path]:
    """``path`` and its rotated siblings, oldest first (``FILE.N`` … ``FILE.1``, ``FILE``)."""
    older = []
    for sibling in path.parent.glob(path.name + ".*"):
        suffix = sibling.name[len(path.name) + 1 :]
        if suffix.isdigit():
            older.append((int(suffix), sibling))
    return [p for _, p in sorted(older, reverse=True)] + ([path] if path.exists() else [])


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        bases = sorted(
            {
                p.with_name(_ROTATED.sub(".jsonl", p.name))
                for p in source.iterdir()
                if _ROTATED.search(p.name)
            }
        )
        return [f for base in bases for f in _rotations(base)]
    files = _rotations(source)
    if not files:
        raise ValueError(f"{source}: no such telemetry file or directory")
    return files


def _json_lines(path: Path, *, growing: bool = False) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of ``path`` parsed, with its line number; ValueError names the line
    that is not JSON. ``growing``: the file is one a running service appends whole lines to,
    so a last line without its newline is still being written and is left for the next read."""
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or (growing and not line.endswith(b"\n")):
                continue
            try:
                yield n, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not a JSON line ({exc})") from None


def _read_jsonl(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in files:
        for _, doc in _json_lines(path, growing=True):
            if isinstance(doc, dict) and "type" in doc:
                yield doc


def _read_stream(url: str, chunk: int = 10_000) -> Iterator[dict[str, Any]]:
    import redis

    parts = urlsplit(url)
    stream = parse_qs(parts.query).get("stream", [DEFAULT_STREAM])[0]
    client = redis.Redis.from_url(urlunsplit(parts._replace(query="", fragment="")))
    try:
        start = "-"
        while True:
            entries = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                client.xrange(stream, min=start, max="+", count=chunk),
            )
            for entry_id, fields in entries:
                start = "(" + entry_id.decode()
                line = fields.get(b"e")
                if line is not None:
                    yield orjson.loads(line)
            if len(entries) < chunk:
                return
    finally:
        client.close()


def read_events(source: str | Path) -> Iterator[dict[str, Any]]:
    """Decision and outcome events from a JSONL file or directory, or a Redis stream URL."""
    text = str(source)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return _read_stream(text)
    return _read_jsonl(_files(Path(source)))


@dataclass
class JoinStats:
    """What the join used and what it left out, and why (the report prints it)."""

    decisions: int = 0
    outcomes: int = 0
    joined: int = 0
    prompts_from_store: int = 0
    """Decisions whose prompt came from the operator's prompt store, by hash."""
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "outcomes": self.outcomes,
            "joined": self.joined,
            "prompts_from_store": self.prompts_from_store,
            "dropped": dict(sorted(self.dropped.items())),
        }


@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """One row per answered request with an outcome; columns are every model ever offered.

    ``offered[i, j]``: model j was a candidate of request i; ``price``: its price there (mean
    of input and output, USD per 1M tokens; NaN where not offered); ``action[i]``: the model
    that answered; ``propensity[i]``: the probability the router had of choosing it (1 for a
    deterministic decision); ``quality[i]``: the outcome's quality (a failed call counts 0);
    ``logged_quality`` / ``logged_score``: what the serving router predicted and scored per
    candidate (NaN where it had none).
    """

    router: str
    models: tuple[str, ...]
    prompts: tuple[str, ...]
    ts: F64
    offered: B
    price: F64
    action: I64
    propensity: F64
    quality: F64
    logged_quality: F64
    logged_score: F64
    version: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.prompts)

    def subset(self, mask: B) -> LoggedFeedback:
        idx = np.flatnonzero(mask)
        return LoggedFeedback(
            router=self.router,
            models=self.models,
            prompts=tuple(self.prompts[i] for i in idx),
            ts=self.ts[idx],
            offered=self.offered[idx],
            price=self.price[idx],
            action=self.action[idx],
            propensity=self.propensity[idx],
            quality=self.quality[idx],
            logged_quality=self.logged_quality[idx],
            logged_score=self.logged_score[idx],
            version=tuple(self.version[i] for i in idx),
        )

    def time_split(self, holdout: float) -> tuple[LoggedFeedback, LoggedFeedback]:
        """The earlier rows and the latest ``holdout`` share of them (by decision time)."""
        if not 0.0 < holdout < 1.0:
            raise ValueError(f"holdout share must be in (0, 1), got {holdout}")
        cut = np.quantile(self.ts, 1.0 - holdout)
        late = self.ts > cut
        return self.subset(~late), self.subset(late)


def _aligned(doc: dict[str, Any], key: str, n: int) -> list[float]:
    values = doc.get(key) or [None] * n
    if len(values) != n:
        raise ValueError(f"decision {doc.get('request_id')!r}: {key} has {len(values)} values")
    return [math.nan if v is None else float(v) for v in values]


def _collect(
    events: Iterable[dict[str, Any]], stats: JoinStats
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], Counter[str]]:
    """Decisions and outcomes by request id (the first decision, the latest outcome), and the
    decisions per router."""
    decisions: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, dict[str, Any]] = {}
    routers: Counter[str] = Counter()
    for doc in events:
        rid = str(doc.get("request_id") or "")
        if doc["type"] == "outcome":
            stats.outcomes += 1
            outcomes[rid] = doc
        elif doc["type"] == "decision":
            stats.decisions += 1
            routers[str(doc.get("router", ""))] += 1
            if not rid:
                stats.dropped["no_request_id"] += 1
            elif rid in decisions:
                stats.dropped["duplicate_request_id"] += 1
            else:
                decisions[rid] = doc
    return decisions, outcomes, routers


def _unusable(doc: dict[str, Any], outcome: dict[str, Any] | None, router: str) -> str:
    """Why a decision cannot be a training row ("" when it can), the first reason that holds."""
    reasons = [
        (doc.get("router") != router, "other_router"),
        (doc.get("source") not in _LEARNED, "not_a_router_decision"),
        (outcome is None, "no_outcome"),
    ]
    if outcome is not None:
        reasons += [
            (outcome.get("model") != doc.get("model"), "outcome_for_another_model"),
            (outcome.get("quality") is None and not outcome.get("failed"), "no_quality"),
        ]
    reasons.append((not doc.get("prompt"), NO_PROMPT))
    return next((why for bad, why in reasons if bad), "")


def load_prompt_store(path: Path, key: bytes) -> dict[str, str]:
    """Your own prompts by their ``prompt_hash`` under the service's key: a JSONL file of
    ``{"prompt": …}`` objects (or of JSON strings), so that events recorded without prompt text
    can still be trained on."""
    store: dict[str, str] = {}
    for n, doc in _json_lines(path):
        text = doc.get("prompt") if isinstance(doc, dict) else doc
        if not isinstance(text, str) or not text:
            raise ValueError(f"{path}:{n}: expected a string or an object with 'prompt'")
        store[prompt_hash(key, text)] = text
    return store


def join_feedback(
    events: Iterable[dict[str, Any]],
    router: str | None = None,
    prompts: Mapping[str, str] | None = None,
) -> tuple[LoggedFeedback, JoinStats]:
    """Decisions of ``router`` (None: the only router in the events) that have an outcome
    report for the model that answered, a quality and a prompt — their own, or the one
    ``prompts`` (:func:`load_prompt_store`) holds for their ``prompt_hash``; the rest is
    counted in :class:`JoinStats` by reason. ValueError when nothing usable is left."""
    stats = JoinStats()
    decisions, outcomes, routers = _collect(events, stats)
    if router is None:
        if len(routers) != 1:
            named = ", ".join(f"{r} ({n})" for r, n in routers.most_common()) or "none"
            raise ValueError(
                f"name the router to train (--name); routers in the telemetry: {named}"
            )
        router = next(iter(routers))
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for rid, event in decisions.items():
        outcome = outcomes.get(rid)
        doc = event
        if prompts and not event.get("prompt") and event.get("prompt_hash") in prompts:
            doc = event | {"prompt": prompts[event["prompt_hash"]]}  # the event itself untouched
            stats.prompts_from_store += 1
        why = _unusable(doc, outcome, router)
        if why:
            stats.dropped[why] += 1
        elif outcome is not None:
            rows.append((doc, outcome))
    if not rows:
        raise ValueError(
            f"no usable rows for router {router!r} in the telemetry: {stats.as_dict()['dropped']}"
        )
    rows.sort(key=lambda r: float(r[0]["ts"]))
    stats.joined = len(rows)
    return _table(router, rows), stats


def _table(router: str, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> LoggedFeedback:
    models = sorted({c for doc, _ in rows for c in doc["candidates"]})
    col = {m: j for j, m in enumerate(models)}
    n, m = len(rows), len(models)
    offered = np.zeros((n, m), dtype=bool)
    price = np.full((n, m), np.nan)
    lq = np.full((n, m), np.nan)
    ls = np.full((n, m), np.nan)
    action = np.zeros(n, dtype=np.int64)
    for i, (doc, _) in enumerate(rows):
        cands = doc["candidates"]
        k = len(cands)
        cols = [col[c] for c in cands]
        offered[i, cols] = True
        ins, outs = _aligned(doc, "input_price", k), _aligned(doc, "output_price", k)
        price[i, cols] = [(a + b) / 2.0 for a, b in zip(ins, outs, strict=True)]
        lq[i, cols] = _aligned(doc, "quality", k)
        ls[i, cols] = _aligned(doc, "score", k)
        action[i] = col[doc["model"]]
    _fill_prices(price, offered, models)
    quality = np.array(
        [0.0 if o.get("failed") else min(max(float(o["quality"]), 0.0), 1.0) for _, o in rows]
    )
    return LoggedFeedback(
        router=router,
        models=tuple(models),
        prompts=tuple(str(doc["prompt"]) for doc, _ in rows),
        ts=np.array([float(doc["ts"]) for doc, _ in rows]),
        offered=offered,
        price=price,
        action=action,
        propensity=np.array([float(doc.get("propensity") or 1.0) for doc, _ in rows]),
        quality=quality,
        logged_quality=lq,
        logged_score=ls,
        version=tuple(str(doc.get("version", "")) for doc, _ in rows),
    )


def _fill_prices(price: F64, offered: B, models: list[str]) -> None:
    """A candidate offered without a price gets the model's median price in the other rows."""
    missing = offered & np.isnan(price)
    for j in np.flatnonzero(missing.any(axis=0)):
        known = price[offered[:, j] & ~np.isnan(price[:, j]), j]
        if not len(known):
            raise ValueError(
                f"model {models[j]!r} is never offered with a price; cost cannot be weighed"
            )
        price[missing[:, j], j] = float(np.median(known))
