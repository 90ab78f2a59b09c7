"""Both edge demos, as `make edge` and `make edge-envoy` run them, route with the learned
default router: each demo's deployments stand for models the router was trained on, so a
request through either edge is decided by the model (``x-routeiq-source: MODEL``)."""

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

from tests.support.litellm_proxy import OFFLINE_ENV, litellm_missing
from tests.support.procs import REPO, free_port, stop_process, tool

pytestmark = pytest.mark.e2e

PROMPT = "Write a python function that merges two sorted linked lists, with tests."


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


def test_the_litellm_demo_routes_with_the_learned_router(
    default_bundle: Path, tmp_path: Path
) -> None:
    missing = litellm_missing()
    if missing:
        pytest.fail(missing)
    proxy_port, log = free_port(), tmp_path / "edge.log"
    argv = ["edge.litellm.launch", "--service-port", str(free_port())]
    argv += ["--proxy-port", str(proxy_port), "--", "--bundle", str(default_bundle)]
    key = "sk-demo-test"
    proc = _launch(argv, {**OFFLINE_ENV, "LITELLM_MASTER_KEY": key}, log)
    try:
        for prompt in (f"warm-up: {PROMPT}", PROMPT):  # the first request also warms the path
            headers, answer = _post_until_ready(
                f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                {"model": "routeiq-auto", "messages": [{"role": "user", "content": prompt}]},
                {"authorization": f"Bearer {key}"},
                proc,
                log,
            )
    finally:
        code = _stopped(proc)
    assert headers["x-routeiq-source"] == "MODEL", headers
    assert headers["x-routeiq-router"] == "llmrouter-knn-tfidf"
    chosen = headers["x-routeiq-model"]
    deployment = {
        "llama-3.1-nemotron-51b-instruct": "openai/gpt-4o",
        "qwen2.5-7b-instruct": "openai/gpt-4o-mini",
        "llama-3.3-nemotron-super-49b-v1": "anthropic/claude-sonnet-4-5",
    }[chosen]
    assert answer["choices"][0]["message"]["content"] == f"answered by {deployment} (mock)"
    assert code == 0, log.read_text(errors="replace")


def test_the_envoy_demo_routes_with_the_learned_router(
    default_bundle: Path, tmp_path: Path
) -> None:
    tool("envoy")
    listen, log = free_port(), tmp_path / "edge.log"
    argv = ["edge.envoy.launch", "--demo", "--bundle", str(default_bundle)]
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
    upstream = {"llama-3.1-nemotron-51b-instruct": "a", "qwen2.5-7b-instruct": "b"}
    assert learned["x-upstream"] == upstream[learned["x-routeiq-model"]]
    assert answer["model"] == learned["x-routeiq-model"]  # the upstream saw the chosen model
    assert (cheap["x-routeiq-source"], cheap["x-routeiq-model"]) == (
        "STATIC",
        "qwen2.5-7b-instruct",
    )
    assert code == 0, log.read_text(errors="replace")
