"""Start real service processes on 127.0.0.1 and stop them by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(
    target: str, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll the standard health service until it says SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited early with code {proc.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{target} not SERVING after {timeout_s} s")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float, sig: int = signal.SIGTERM) -> int:
    """Stop a child by pid: ``sig`` (SIGTERM), then SIGKILL after ``timeout_s``; its exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


class ServiceProcess:
    """``routeiq-router serve`` as a real child process."""

    def __init__(
        self, args: Sequence[str] = (), env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkdtemp(prefix="routeiq-svc-")) / "service.log"
        full_env = {**os.environ, **(env or {})}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router_service", "serve", "--port", str(self.port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or REPO,
        )

    def wait_ready(self, timeout_s: float = 20.0) -> ServiceProcess:
        wait_serving(self.target, timeout_s, self.proc)
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
