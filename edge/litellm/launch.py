"""Start the RouteIQ Router service and a LiteLLM proxy with the RouteIQ plug-in, together.

    python -m edge.litellm.launch [--proxy-port 4000] [--service-port 50051] [-- SERVE_ARGS…]

The service starts first (``routeiq-router serve`` plus any arguments after ``--``, such as
``--config FILE`` or ``--bundle DIR``; ready once its health check says SERVING),
then the proxy (``litellm --config edge/litellm/config.yaml``) pointed at it through
``ROUTEIQ_EDGE_TARGET``. Ctrl-C (SIGINT) or SIGTERM stops the proxy, then the service, each
given ``--grace-s`` seconds before it is killed; when either child exits on its own, the other
is stopped too and the launcher exits with the child's code. When ``LITELLM_MASTER_KEY`` is
unset a random key is generated for this run and printed (the proxy refuses to start without
one). ``LITELLM_LOCAL_MODEL_COST_MAP`` and ``LITELLM_OFFLINE_MODE`` default to true, so start-up
fetches nothing from the network.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from edge.devtools.processes import is_serving, stop_process

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
_POLL_S = 0.2


class _Stop(Exception):
    """A signal asked the launcher to stop."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _proxy_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as reply:  # noqa: S310 - our own http URL
            return bool(reply.status == 200)
    except OSError:
        return False


def _wait(
    what: str, check: Callable[[], bool], procs: Sequence[subprocess.Popen[bytes]], limit: float
) -> None:
    """Poll ``check`` until it is true; exit when a child dies or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while not check():
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{what}: a process exited early with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not ready after {limit:.0f} s")
        time.sleep(_POLL_S)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge.litellm.launch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of both (default 127.0.0.1)")
    parser.add_argument("--proxy-port", type=int, default=4000)
    parser.add_argument("--service-port", type=int, default=50051)
    parser.add_argument("--proxy-config", default=str(HERE / "config.yaml"))
    parser.add_argument("--grace-s", type=float, default=15.0, help="time each child has to stop")
    parser.add_argument("--ready-timeout-s", type=float, default=120.0)
    parser.add_argument(
        "serve_args", nargs=argparse.REMAINDER, help="after --: more `routeiq-router serve` flags"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    litellm_bin, router_bin = _tool("litellm"), _tool("routeiq-router")
    if litellm_bin is None:
        print("litellm is not installed in this environment: install the edge requirements")
        return 2
    service_cmd = [router_bin] if router_bin else [sys.executable, "-m", "router_service"]
    service_cmd += ["serve", "--host", args.host, "--port", str(args.service_port)]
    service_cmd += [a for a in args.serve_args if a != "--"]
    target = f"{args.host}:{args.service_port}"
    env = {**os.environ, "ROUTEIQ_EDGE_TARGET": target}
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("LITELLM_OFFLINE_MODE", "true")
    if not env.get("LITELLM_MASTER_KEY"):
        env["LITELLM_MASTER_KEY"] = "sk-local-" + secrets.token_hex(24)
        print(f"LITELLM_MASTER_KEY was unset; this run's key: {env['LITELLM_MASTER_KEY']}")
    proxy_cmd = [litellm_bin, "--config", args.proxy_config]
    proxy_cmd += ["--host", args.host, "--port", str(args.proxy_port)]

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    procs: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        # own sessions: Ctrl-C reaches only the launcher, which stops the proxy first
        procs.append(subprocess.Popen(service_cmd, env=env, start_new_session=True))
        _wait("router service", lambda: is_serving(target), procs, 30.0)
        print(f"router service SERVING on {target}")
        procs.append(subprocess.Popen(proxy_cmd, env=env, start_new_session=True))
        health = f"http://{args.host}:{args.proxy_port}/health/liveliness"
        _wait("litellm proxy", lambda: _proxy_ready(health), procs, args.ready_timeout_s)
        print(f"ready: OpenAI API at http://{args.host}:{args.proxy_port}/v1 (Ctrl-C stops both)")
        while all(proc.poll() is None for proc in procs):
            time.sleep(_POLL_S)
        code = next(proc.returncode for proc in procs if proc.poll() is not None)
        print(f"a child exited with code {code}; stopping the other")
    except _Stop as stop:
        print(f"{stop}: stopping the proxy, then the service")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in reversed(procs):  # the service (first) gets SIGINT: no drain, no edge left
            stop_process(proc, args.grace_s, signal.SIGINT if proc is procs[0] else signal.SIGTERM)
    return code


if __name__ == "__main__":
    sys.exit(main())
