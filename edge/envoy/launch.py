"""Run the local Envoy edge: the RouteIQ Router service and Envoy together, in one command.

    python -m edge.envoy.launch --demo --bundle var/bundles/default --bundle var/bundles/tier
    python -m edge.envoy.launch --upstream-a 127.0.0.1:8001 --upstream-b ... --upstream-c ...

The service runs ``routeiq-router serve --config edge/envoy/routeiq.yaml`` (ext_proc on its gRPC
port) with the ``--bundle`` directories given; Envoy runs ``edge/envoy/envoy.yaml`` rendered
with the ports below and writes its JSON access log to stdout. Upstream A serves ``--model-a``,
B serves ``--model-b``, C is the default route (requests the service did not route). The
defaults are the candidates of ``routeiq.yaml``'s routes, which its ``auto`` route leaves to the
tier router (any priced models; the bundle ``make bundle`` builds in ``var/bundles/tier``).
Ctrl-C (or SIGTERM) stops both; if either exits,
the other is stopped and the exit code is passed on. Envoy is ``--envoy``, else
``.tools/bin/envoy`` (``make tools``), else ``envoy`` on PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from edge.devtools.fake_upstream import FakeUpstream
from edge.devtools.processes import stop_process, wait_serving
from edge.envoy.render import render

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _envoy_binary(explicit: str | None) -> str:
    for candidate in (explicit, str(REPO / ".tools" / "bin" / "envoy"), shutil.which("envoy")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("launch: envoy not found: run `make tools` or pass --envoy PATH")


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _demo_upstreams() -> list[tuple[str, int]]:
    """Three fake OpenAI-compatible upstreams, in this process, that say who they are."""
    upstreams = [FakeUpstream(name) for name in ("a", "b", "c")]
    return [("127.0.0.1", u.port) for u in upstreams]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--listen-port", type=int, default=8080, help="Envoy's listener (8080)")
    parser.add_argument("--admin-port", type=int, default=9901, help="Envoy's admin (9901)")
    parser.add_argument("--router-port", type=int, default=50051, help="the service (50051)")
    parser.add_argument("--config", type=Path, default=HERE / "routeiq.yaml", help="service config")
    parser.add_argument("--template", type=Path, default=HERE / "envoy.yaml", help="Envoy template")
    parser.add_argument("--envoy", help="Envoy binary")
    parser.add_argument("--model-a", default="openai/gpt-4o", help="model served by upstream A")
    parser.add_argument(
        "--model-b", default="openai/gpt-4o-mini", help="model served by upstream B"
    )
    parser.add_argument(
        "--bundle", type=Path, action="append", default=[], help="router bundle to serve"
    )
    for letter, port in (("a", 8001), ("b", 8002), ("c", 8003)):
        parser.add_argument(
            f"--upstream-{letter}",
            type=_host_port,
            default=("127.0.0.1", port),
            metavar="HOST:PORT",
        )
    parser.add_argument("--demo", action="store_true", help="serve three fake upstreams")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    envoy = _envoy_binary(args.envoy)
    upstreams = (
        _demo_upstreams() if args.demo else [args.upstream_a, args.upstream_b, args.upstream_c]
    )
    values: dict[str, object] = {
        "LISTEN_PORT": args.listen_port,
        "ADMIN_PORT": args.admin_port,
        "ROUTER_HOST": "127.0.0.1",
        "ROUTER_PORT": args.router_port,
        "MODEL_A": args.model_a,
        "MODEL_B": args.model_b,
    }
    for letter, (host, port) in zip("ABC", upstreams, strict=True):
        values[f"UPSTREAM_{letter}_HOST"] = host
        values[f"UPSTREAM_{letter}_PORT"] = port
    workdir = Path(tempfile.mkdtemp(prefix="routeiq-edge-"))
    try:
        return _run(args, envoy, upstreams, values, workdir / "envoy.yaml")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    args: argparse.Namespace,
    envoy: str,
    upstreams: list[tuple[str, int]],
    values: dict[str, object],
    config: Path,
) -> int:
    config.write_text(render(args.template.read_text(), values))
    bundles = [arg for path in args.bundle for arg in ("--bundle", str(path))]
    service = subprocess.Popen(
        [sys.executable, "-m", "router_service", "serve", "--config", str(args.config),
         "--port", str(args.router_port), *bundles],
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{args.router_port}", service, timeout_s=30)
    except (RuntimeError, TimeoutError) as exc:
        stop_process(service, 10)
        sys.exit(f"launch: the router service did not start: {exc}")
    proxy = subprocess.Popen([envoy, "-c", str(config), "--log-level", "warn"])
    print(
        f"launch: edge on http://127.0.0.1:{args.listen_port}/v1 (admin :{args.admin_port}), "
        f"router service on :{args.router_port}, upstreams "
        + ", ".join(f"{h}:{p}" for h, p in upstreams)
        + ". Ctrl-C stops.",
        flush=True,
    )

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: ignored when started with `&`
        signal.signal(sig, _on_signal)
    try:
        while service.poll() is None and proxy.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        # SIGINT: with Envoy gone there is nothing to drain, so the service stops at once
        codes = (stop_process(proxy, 10), stop_process(service, 10, signal.SIGINT))
    print(f"launch: stopped (envoy {codes[0]}, router service {codes[1]})", flush=True)
    return max((abs(c) for c in codes if c not in (0, -signal.SIGTERM, -signal.SIGINT)), default=0)


if __name__ == "__main__":
    sys.exit(main())
