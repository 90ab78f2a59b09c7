"""Client-side load balancing: the LiteLLM plug-in's one channel spreads its calls round robin
over every replica its target names (here three real service processes on three loopback
addresses, as a headless Service's DNS name would resolve to three pods), instead of pinning
them all to the first connection; a replica that stops is left out."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.litellm_proxy import OFFLINE_ENV, litellm_missing
from tests.support.procs import ServiceProcess

pytestmark = pytest.mark.e2e

_MISSING = litellm_missing()
if _MISSING is not None:
    pytest.fail(_MISSING, pytrace=False)

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
DEPLOYMENTS = [
    {"model_name": "g", "litellm_params": {"model": "openai/a", "input_cost_per_token": 1e-6}},
    {"model_name": "g", "litellm_params": {"model": "openai/b", "input_cost_per_token": 2e-6}},
]


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    try:
        for host in HOSTS:
            started.append(ServiceProcess(host=host).wait_ready())
        yield started
    finally:
        for svc in started:
            svc.stop()


def _decisions(svc: ServiceProcess) -> int:
    """Decisions a replica answered, from its decision events (written at the latest on stop)."""
    path = svc.run_dir / "events.jsonl"
    if not path.exists():
        return 0
    return sum(json.loads(line)["type"] == "decision" for line in path.read_text().splitlines())


async def test_the_plugin_spreads_calls_over_every_replica(replicas: list[ServiceProcess]) -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    from edge.litellm import plugin

    target = "ipv4:" + ",".join(svc.target for svc in replicas)
    edge: Any = plugin.RouteIQRouter(target=target, deadline_ms=2000, router="cheapest")
    messages = [{"role": "user", "content": "hello"}]
    kwargs = {"litellm_call_id": "c", "metadata": {"headers": {}}}
    for i in range(30):
        kwargs["litellm_call_id"] = f"call-{i}"
        chosen = await edge.async_filter_deployments("g", DEPLOYMENTS, messages, kwargs)
        assert [d["litellm_params"]["model"] for d in chosen] == ["openai/a"]  # the cheapest
    assert edge.counters.routed == 30
    replicas[1].stop()  # one replica goes away: the rest keep answering
    for i in range(6):
        kwargs["litellm_call_id"] = f"after-{i}"
        await edge.async_filter_deployments("g", DEPLOYMENTS, messages, kwargs)
    await edge.close()
    assert edge.counters.routed == 36, edge.counters
    for svc in (replicas[0], replicas[2]):
        svc.stop()
    counts = [_decisions(svc) for svc in replicas]
    assert sum(counts) == 36
    assert all(n >= 8 for n in counts), counts  # round robin: about 10 each, then 13 + 13
