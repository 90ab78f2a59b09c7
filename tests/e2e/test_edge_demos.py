"""Both edge demos, as `make edge` and `make edge-envoy` run them, route their own deployments
(GPT-4o, GPT-4o mini, Claude Sonnet: models no bundle was trained on) with the tier router, so
a request through either edge is decided by the model (``x-routeiq-source: MODEL``), and the
cheap deployment takes more of the easy prompts than of the hard ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from converters.datasets import SHIPPED_DATA, load
from router_service.bundles.manifest import Manifest
from tests.support.litellm_proxy import OFFLINE_ENV, litellm_missing
from tests.support.procs import REPO, free_port, stop_process, tool

pytestmark = pytest.mark.e2e

PROMPT = "Write a python function that merges two sorted linked lists, with tests."
TIER_ROUTER = "llmrouter-tier-tfidf"
DEPLOYMENTS = ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4-5")


def _easy_and_hard(bundle: Path) -> tuple[list[str], list[str]]:
    """Held-out LLMRouter prompts (test rows: the router never trained on them), split by what
    the data says about them: *easy* when the bundle's cheap rung answers at least 2 in 3 right
    and the dear rung does no better, *hard* when the dear rung's mean quality beats the cheap
    rung's by 0.5 or more."""
    ladder = Manifest.model_validate_json((bundle / "manifest.json").read_text()).provenance[
        "ladder"
    ]
    test = load(SHIPPED_DATA / "llmrouter", "llmrouter").test()
    index = {m: i for i, m in enumerate(test.models)}
    cheap, dear = ([index[m] for m in rung["members"]] for rung in (ladder[0], ladder[-1]))
    low, high = test.quality[:, cheap].mean(axis=1), test.quality[:, dear].mean(axis=1)
    rows = list(zip(test.queries, low, high, strict=True))
    easy = [q for q, lo, hi in rows if hi <= lo and lo >= 2 / 3]
    hard = [q for q, lo, hi in rows if hi - lo >= 0.5]
    return easy, hard


def _launch(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *argv],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _post_until_ready(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    proc: subprocess.Popen[bytes],
    log: Path,
) -> tuple[dict[str, str], dict[str, Any]]:
    """POST ``body`` until the edge answers 200 (it is starting); its headers and JSON."""
    deadline = time.monotonic() + 120
    data = json.dumps(body).encode()
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        request = urllib.request.Request(
            url, data=data, headers={"content-type": "application/json", **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return {k.lower(): v for k, v in reply.headers.items()}, json.loads(reply.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise TimeoutError(log.read_text(errors="replace"))


def _stopped(proc: subprocess.Popen[bytes]) -> int:
    return stop_process(proc, 30, signal.SIGINT)  # Ctrl-C, as a user stops a demo


def test_the_litellm_demo_routes_its_own_deployments_with_the_tier_router(
    default_bundle: Path, tier_bundle: Path, tmp_path: Path
) -> None:
    missing = litellm_missing()
    if missing:
        pytest.fail(missing)
    easy, hard = _easy_and_hard(tier_bundle)
    assert len(easy) >= 50 and len(hard) >= 30, (len(easy), len(hard))
    proxy_port, log = free_port(), tmp_path / "edge.log"
    argv = ["edge.litellm.launch", "--service-port", str(free_port())]
    argv += ["--proxy-port", str(proxy_port), "--"]
    argv += ["--bundle", str(default_bundle), "--bundle", str(tier_bundle)]  # as `make edge`
    key = "sk-demo-test"
    env = {**OFFLINE_ENV, "LITELLM_MASTER_KEY": key, "ROUTEIQ_EDGE_ROUTER": TIER_ROUTER}
    proc = _launch(argv, env, log)
    picks: dict[str, list[str]] = {"easy": [], "hard": []}
    try:
        _post_until_ready(  # the first request also warms the path
            f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
            {"model": "routeiq-auto", "messages": [{"role": "user", "content": PROMPT}]},
            {"authorization": f"Bearer {key}"},
            proc,
            log,
        )
        for kind, prompts in (("easy", easy), ("hard", hard)):
            for prompt in prompts:
                headers, answer = _post_until_ready(
                    f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                    {"model": "routeiq-auto", "messages": [{"role": "user", "content": prompt}]},
                    {"authorization": f"Bearer {key}"},
                    proc,
                    log,
                )
                assert (headers["x-routeiq-source"], headers["x-routeiq-router"]) == (
                    "MODEL",
                    TIER_ROUTER,
                ), headers
                chosen = headers["x-routeiq-model"]
                assert chosen in DEPLOYMENTS
                assert answer["choices"][0]["message"]["content"] == f"answered by {chosen} (mock)"
                picks[kind].append(chosen)
    finally:
        code = _stopped(proc)
    assert code == 0, log.read_text(errors="replace")
    share = {k: v.count("openai/gpt-4o-mini") / len(v) for k, v in picks.items()}
    print(f"cheapest deployment's share: {share}")
    assert share["easy"] > share["hard"] + 0.1, share
    assert share["easy"] < 1.0 and share["hard"] < 1.0, share  # it does go up the ladder


def test_the_envoy_demo_routes_its_own_upstreams_with_the_tier_router(
    default_bundle: Path, tier_bundle: Path, tmp_path: Path
) -> None:
    tool("envoy")
    listen, log = free_port(), tmp_path / "edge.log"
    argv = ["edge.envoy.launch", "--demo", "--bundle", str(default_bundle)]
    argv += ["--bundle", str(tier_bundle)]  # as `make edge-envoy`
    argv += ["--listen-port", str(listen), "--admin-port", str(free_port())]
    argv += ["--router-port", str(free_port())]
    proc = _launch(argv, {"PATH": f"{REPO / '.tools' / 'bin'}:{os.environ['PATH']}"}, log)

    def post(model: str, prompt: str = PROMPT) -> tuple[dict[str, str], dict[str, Any]]:
        return _post_until_ready(
            f"http://127.0.0.1:{listen}/v1/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": prompt}]},
            {},
            proc,
            log,
        )

    try:
        post("auto", f"warm-up: {PROMPT}")  # the first request also warms the path
        learned, answer = post("auto")
        cheap, _ = post("cheap")
    finally:
        code = _stopped(proc)
    assert learned["x-routeiq-source"] == "MODEL", learned
    upstream = {"openai/gpt-4o": "a", "openai/gpt-4o-mini": "b"}
    assert learned["x-upstream"] == upstream[learned["x-routeiq-model"]]
    assert answer["model"] == learned["x-routeiq-model"]  # the upstream saw the chosen model
    assert (cheap["x-routeiq-source"], cheap["x-routeiq-model"]) == (
        "STATIC",
        "openai/gpt-4o-mini",
    )
    assert code == 0, log.read_text(errors="replace")
