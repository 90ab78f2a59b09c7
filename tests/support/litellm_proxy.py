"""A real LiteLLM proxy process with the RouteIQ plug-in, on a free port, stopped by pid.

The config is ``edge/litellm/config.yaml`` (the plug-in, the routing strategy, the master key
setting) with its ``model_list`` replaced by the test's deployments, so the shipped config is the
one under test. Start-up takes 5–25 s here; :meth:`LiteLLMProxy.wait_ready` polls
``/health/liveliness``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.procs import REPO, free_port, stop_process

__all__ = ["LiteLLMProxy", "deployment", "litellm_missing", "proxy_config"]

EDGE_CONFIG = REPO / "edge" / "litellm" / "config.yaml"
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}


def litellm_missing() -> str | None:
    """Why the LiteLLM edge cannot run here, or ``None`` when litellm and openai are installed."""
    missing = [m for m in ("litellm", "openai") if importlib.util.find_spec(m) is None]
    if missing or _litellm_bin() is None:
        return (
            f"{', '.join(missing) or 'the litellm command'} not installed in {sys.prefix}: "
            "install the LiteLLM edge requirements (pip install --require-hashes --no-deps "
            "-r requirements/edge-litellm.txt) to run the LiteLLM edge tests"
        )
    return None


def _litellm_bin() -> str | None:
    local = Path(sys.executable).parent / "litellm"
    return str(local) if local.exists() else shutil.which("litellm")


def deployment(
    group: str,
    model: str,
    api_base: str,
    input_cost_per_token: float | None = None,
    output_cost_per_token: float | None = None,
) -> dict[str, Any]:
    """One ``model_list`` entry for an OpenAI-compatible upstream."""
    params: dict[str, Any] = {"model": model, "api_base": api_base, "api_key": "fake-upstream-key"}
    if input_cost_per_token is not None:
        params["input_cost_per_token"] = input_cost_per_token
    if output_cost_per_token is not None:
        params["output_cost_per_token"] = output_cost_per_token
    return {"model_name": group, "litellm_params": params}


def proxy_config(
    path: Path, deployments: Sequence[Mapping[str, Any]], **router_settings: Any
) -> Path:
    """Write ``edge/litellm/config.yaml`` with ``deployments`` as its model list to ``path``."""
    config = yaml.safe_load(EDGE_CONFIG.read_text())
    config["model_list"] = [dict(d) for d in deployments]
    config.setdefault("router_settings", {}).update(router_settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class LiteLLMProxy:
    """``litellm --config FILE`` as a child process with the plug-in's environment."""

    def __init__(self, config: Path, env: Mapping[str, str] | None = None) -> None:
        binary = _litellm_bin()
        if binary is None:
            raise FileNotFoundError(litellm_missing())
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.master_key = "sk-test-" + secrets.token_hex(16)
        self.log_path = Path(tempfile.mkdtemp(prefix="routeiq-litellm-")) / "proxy.log"
        self._log = self.log_path.open("wb")
        full_env = {
            **os.environ,
            **OFFLINE_ENV,
            "LITELLM_MASTER_KEY": self.master_key,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=REPO,
        )

    def wait_ready(self, timeout_s: float = 90.0) -> LiteLLMProxy:
        """Poll ``/health/liveliness`` until it answers 200; fail with the log's tail otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"litellm exited early with code {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/health/liveliness", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"litellm not ready after {timeout_s} s:\n{self.tail()}")

    @classmethod
    @contextlib.contextmanager
    def running(cls, config: Path, env: Mapping[str, str] | None = None) -> Iterator[LiteLLMProxy]:
        """A ready proxy (stopped when it does not get ready, and at the end)."""
        proc = cls(config, env)
        try:
            yield proc.wait_ready()
        finally:
            proc.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> int:
        code = stop_process(self.proc, timeout_s)
        self._log.close()
        return code
