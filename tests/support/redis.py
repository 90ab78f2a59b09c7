"""Real redis-server processes for tests: started on free ports, stopped by pid."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from edge.devtools.processes import port_is_free
from tests.support.procs import stop_process, tool


def free_port_pair() -> int:
    """A port whose cluster-bus companion (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if port_is_free(port) and port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for redis")


class RedisServer:
    def __init__(self, port: int | None = None, cluster: bool = False) -> None:
        self.port = port or free_port_pair()
        self.cluster = cluster
        self.dir = Path(tempfile.mkdtemp(prefix="routeiq-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            tool("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--enable-debug-command",
            "local",
            "--daemonize",
            "no",
        ]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.dir / "nodes.conf"),
            ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ping()

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        out = subprocess.run(
            [tool("redis-cli"), "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return out.stdout.strip()

    def wait_ping(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.cli("PING", timeout=2) == "PONG":
                    return
            except subprocess.SubprocessError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"redis on {self.port} did not answer PING")

    def kill(self) -> None:
        """SIGKILL: the way a crashed Redis goes away."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)


class RedisCluster:
    """Three masters joined with ``redis-cli --cluster create``."""

    def __init__(self) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(3)]
        hosts = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [
                tool("redis-cli"),
                "--cluster",
                "create",
                *hosts,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.nodes):
                return
            time.sleep(0.1)
        raise TimeoutError("redis cluster did not reach cluster_state:ok")

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
