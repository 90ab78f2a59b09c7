"""Start real service processes on 127.0.0.1 and stop them by pid."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.devtools.processes import free_port, stop_process, wait_serving

__all__ = ["REPO", "ServiceProcess", "free_port", "stop_process", "tool", "wait_serving"]

REPO = Path(__file__).resolve().parents[2]


class ServiceProcess:
    """``routeiq-router serve`` as a real child process."""

    def __init__(
        self,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = free_port()
        self.target = f"{host}:{self.port}"
        run_dir = Path(tempfile.mkdtemp(prefix="routeiq-svc-"))
        self.run_dir = run_dir
        self.log_path = run_dir / "service.log"
        # No drain delay at SIGTERM unless a test asks for one (tests stop services often);
        # decision events in the run's own directory unless a test says where.
        full_env = {
            "ROUTEIQ_SERVER__DRAIN_DELAY_S": "0",
            "ROUTEIQ_TELEMETRY__EVENTS__PATH": str(run_dir / "events.jsonl"),
            "ROUTEIQ_TELEMETRY__EVENTS__HASH_KEY_FILE": str(run_dir / "prompt-hash.key"),
            **os.environ,
            **(env or {}),
        }
        self._log = self.log_path.open("wb")
        command = [sys.executable, "-m", "router_service", "serve", "--host", host]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or REPO,
        )

    def wait_ready(self, timeout_s: float = 20.0) -> ServiceProcess:
        wait_serving(self.target, self.proc, timeout_s)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        code = stop_process(self.proc, timeout_s, sig)
        self._log.close()
        return code


def tool(name: str) -> str:
    """Path of an external tool installed by `make tools`; fails loudly when missing."""
    local = REPO / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make tools`")
    return found
