"""Child processes on 127.0.0.1: a free port, waiting until a gRPC server is SERVING, and
stopping by pid. Shared by the edge launchers, the benchmark harness and the test harness."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["free_port", "is_serving", "port_is_free", "stop_process", "wait_serving"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def is_serving(target: str, timeout_s: float = 1.0) -> bool:
    """Whether the standard gRPC health service at ``target`` says SERVING now."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def wait_serving(
    target: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 30.0
) -> None:
    """Poll the health service at ``target`` until SERVING. Raises ``RuntimeError`` when
    ``proc`` exits first and ``TimeoutError`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on {target} exited with code {proc.returncode}")
        if is_serving(target):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{target} not SERVING after {timeout_s:.0f} s")


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
