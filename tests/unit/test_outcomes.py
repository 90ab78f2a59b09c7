import asyncio
import json
from pathlib import Path

import pytest

from router_service.domain import Outcome
from router_service.errors import Overloaded
from router_service.telemetry.outcomes import JsonlOutcomeSink


def outcome(i: int) -> Outcome:
    return Outcome(f"r{i}", "m", 0.5, 12.5, 0.001, False, "default", {"tenant": "t1"})


async def test_outcomes_are_appended_as_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    sink = JsonlOutcomeSink(path)
    sink.start()
    for i in range(3):
        sink.submit(outcome(i))
    await sink.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["request_id"] for r in rows] == ["r0", "r1", "r2"]
    assert rows[0]["labels"] == {"tenant": "t1"}
    assert rows[0]["latency_ms"] == 12.5


async def test_full_queue_is_overloaded_not_dropped(tmp_path: Path) -> None:
    sink = JsonlOutcomeSink(tmp_path / "o.jsonl", queue_size=2)  # writer not started yet
    sink.submit(outcome(0))
    sink.submit(outcome(1))
    with pytest.raises(Overloaded, match="outcome queue is full"):
        sink.submit(outcome(2))
    sink.start()
    await sink.close()
    await asyncio.sleep(0)
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2
