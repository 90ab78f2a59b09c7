"""What ext_proc routing costs at the Envoy edge: latency through Envoy with and without the
RouteIQ ext_proc filter, measured in one run.

One Envoy process (the real binary, ``edge/envoy/envoy.yaml`` rendered on free ports) gets three
listeners that differ only in the ext_proc filter:

- ``envoy``: no ext_proc filter;
- ``envoy + no-op ext_proc``: the filter, pointed at a Python ``grpc.aio`` processor that answers
  every message with CONTINUE (the floor any Python ext_proc service pays: two round trips over
  one gRPC stream per request);
- ``envoy + RouteIQ ext_proc``: the template's filter → the real ``routeiq-router serve``
  process, which parses the body, routes (static ``cheapest`` router) and rewrites it.

Every cluster points at one fake upstream in its own process; the upstream answered directly is
the floor row. Requests go one at a time over kept-alive connections, rotating through the arms,
after a warm-up. Both processors' CPU time per request is read from /proc (it is less noisy than
latency on a shared machine).

    python benchmarks/envoy_edge.py [-n 500] [--warmup 200] [--out results.json]

Prints a table (ms) and, with ``--out``, writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.envoy import EnvoyProcess, envoy_binary, render_edge  # noqa: E402
from tests.support.procs import ServiceProcess, free_port  # noqa: E402

MODELS = ("gpt-big", "small-fast")
BODY = json.dumps(
    {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "Summarise the plot of Hamlet in three sentences. " * 8},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
    }
).encode()

_UPSTREAM = """
import time
from edge.devtools.fake_upstream import FakeUpstream
upstream = FakeUpstream("bench")
# The fake writes an answer's headers and body in two sends; with Nagle on, the body waits for
# the peer's delayed ACK (~40 ms). TCP_NODELAY, as every real server sets it.
upstream._server.RequestHandlerClass.disable_nagle_algorithm = True
print(upstream.port, flush=True)
time.sleep(1e9)
"""

_NOOP_PROCESSOR = """
import grpc, uvloop
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
HEADERS = ep.ProcessingResponse(request_headers=ep.HeadersResponse())
BODY = ep.ProcessingResponse(request_body=ep.BodyResponse())
class NoOp:
    async def Process(self, requests, context):
        while (message := await context.read()) is not grpc.aio.EOF:
            await context.write(HEADERS if message.HasField("request_headers") else BODY)
async def main():
    server = grpc.aio.server()
    ep_grpc.add_ExternalProcessorServicer_to_server(NoOp(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()
uvloop.run(main())
"""


class ScriptProcess:
    """A helper script in its own process (it must not share the client's GIL); it prints its
    port on its first line and runs until stopped by pid."""

    def __init__(self, script: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _service_config(path: Path) -> Path:
    big = {"name": MODELS[0], "input_price_per_mtok": 5, "output_price_per_mtok": 15}
    small = {"name": MODELS[1], "input_price_per_mtok": 0.15, "output_price_per_mtok": 0.6}
    route = {"name": "auto", "match": {"route": "openai", "model": "auto"}}
    config = {
        "routers": [{"name": "cheapest", "strategy": "cheapest"}],
        "default_router": "cheapest",
        "telemetry": {"outcomes_path": str(path.parent / "outcomes.jsonl")},
        "log_level": "WARNING",
        "ext_proc": {"routes": [{**route, "candidates": [big, small]}]},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _listeners(rendered: str, ports: dict[str, int], noop_processor: int) -> str:
    """The rendered edge config plus copies of its listener: ``plain`` (no ext_proc filter)
    and ``noop`` (the filter pointed at the no-op processor)."""
    config = yaml.safe_load(rendered)
    resources = config["static_resources"]
    original = resources["listeners"][0]
    for name, port in ports.items():
        listener = copy.deepcopy(original)
        listener["name"] = name
        listener["address"]["socket_address"]["port_value"] = port
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["stat_prefix"] = name
        ext_proc = next(f for f in hcm["http_filters"] if "ext_proc" in f["name"])
        if name == "plain":
            hcm["http_filters"].remove(ext_proc)
            for vhost in hcm["route_config"]["virtual_hosts"]:
                vhost.pop("typed_per_filter_config", None)
        elif name == "noop":
            ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = "noop"
        resources["listeners"].append(listener)
    router = next(c for c in resources["clusters"] if c["name"] == "routeiq_router")
    noop = copy.deepcopy(router)
    noop["name"] = noop["load_assignment"]["cluster_name"] = "noop"
    endpoint = noop["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"]["port_value"] = noop_processor
    resources["clusters"].append(noop)
    return yaml.safe_dump(config)


class Arm:
    """One kept-alive HTTP/1.1 connection and the latencies measured through it."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.ms: list[float] = []
        self.answered_by: dict[str, int] = {}

    def once(self, record: bool) -> None:
        start = time.perf_counter_ns()
        self.conn.request(
            "POST", "/v1/chat/completions", BODY, {"content-type": "application/json"}
        )
        reply = self.conn.getresponse()
        reply.read()
        elapsed = (time.perf_counter_ns() - start) / 1e6
        if reply.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {reply.status}")
        if record:
            self.ms.append(elapsed)
            model = reply.getheader("x-routeiq-model") or "-"
            self.answered_by[model] = self.answered_by.get(model, 0) + 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.ms)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

        return {
            "n": len(ordered),
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "mean_ms": statistics.fmean(ordered),
            "max_ms": ordered[-1],
            "routed_to": self.answered_by,
        }


def _measure(arms: list[Arm], requests: int, warmup: int, cpu_pids: dict[str, int]) -> Any:
    print(f"warm-up: {warmup} requests per arm", flush=True)
    for _ in range(warmup):
        for arm in arms:
            arm.once(record=False)
    time.sleep(0.5)  # let the warm-up's stragglers (GC, logs, TCP) settle
    print(f"measuring: {requests} requests per arm, rotating through the arms", flush=True)
    cpu_before = {name: _cpu_s(pid) for name, pid in cpu_pids.items()}
    for i in range(requests):
        shift = i % len(arms)
        for arm in arms[shift:] + arms[:shift]:
            arm.once(record=True)
        if (i + 1) % max(1, requests // 5) == 0:
            print(f"  {i + 1}/{requests}", flush=True)
    cpu_ms = {
        name: 1000 * (_cpu_s(pid) - cpu_before[name]) / requests for name, pid in cpu_pids.items()
    }
    return {arm.name: arm.summary() for arm in arms}, cpu_ms


def _print_table(results: dict[str, Any], cpu_ms: dict[str, float]) -> dict[str, float]:
    print(f"\n{'arm':<26} {'p50':>7} {'p90':>7} {'p99':>7} {'mean':>7} {'max':>7}  (ms)")
    for name, r in results.items():
        print(
            f"{name:<26} {r['p50_ms']:>7.3f} {r['p90_ms']:>7.3f} {r['p99_ms']:>7.3f} "
            f"{r['mean_ms']:>7.3f} {r['max_ms']:>7.3f}"
        )
    plain, noop, routeiq = (
        results["envoy"],
        results["envoy + no-op ext_proc"],
        results["envoy + RouteIQ ext_proc"],
    )
    added = {
        "p50_ms": routeiq["p50_ms"] - plain["p50_ms"],
        "p99_ms": routeiq["p99_ms"] - plain["p99_ms"],
        "noop_p50_ms": noop["p50_ms"] - plain["p50_ms"],
        "noop_p99_ms": noop["p99_ms"] - plain["p99_ms"],
    }
    print(
        f"\nRouteIQ ext_proc adds {added['p50_ms']:.3f} ms at p50, {added['p99_ms']:.3f} ms at "
        f"p99 (target ≤ 0.8 ms at p50); a no-op Python processor adds {added['noop_p50_ms']:.3f}"
        f" / {added['noop_p99_ms']:.3f} ms."
    )
    print(
        f"processor CPU per request: RouteIQ {cpu_ms['routeiq']:.3f} ms, "
        f"no-op {cpu_ms['noop']:.3f} ms; routed to {routeiq['routed_to']}"
    )
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=500, help="per arm (500)")
    parser.add_argument("--warmup", type=int, default=200, help="per arm, not recorded (200)")
    parser.add_argument("--envoy-concurrency", type=int, default=1, help="Envoy workers (1)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    envoy_path = envoy_binary()
    version = (
        subprocess.run([envoy_path, "--version"], capture_output=True, text=True, check=True)
        .stdout.split("version:")[-1]
        .strip()
    )
    upstream = ScriptProcess(_UPSTREAM)
    noop = ScriptProcess(_NOOP_PROCESSOR)
    workdir = Path(tempfile.mkdtemp(prefix="routeiq-bench-"))
    service = ServiceProcess(["--config", str(_service_config(workdir / "router.yaml"))])
    envoy = None
    try:
        service.wait_ready()
        print(f"router service on {service.target}, no-op processor on :{noop.port}", flush=True)
        admin, edge_port = free_port(), free_port()
        ports = {name: free_port() for name in ("plain", "noop")}
        rendered = render_edge(
            listen_port=edge_port,
            admin_port=admin,
            router_port=service.port,
            upstreams=(upstream.port,) * 3,
            models=MODELS,
        )
        config = _listeners(rendered, ports, noop.port)
        envoy = EnvoyProcess(config, admin, edge_port, args.envoy_concurrency).wait_ready()
        print(f"envoy {version} (concurrency {args.envoy_concurrency})", flush=True)
        arms = [
            Arm("upstream direct", upstream.port),
            Arm("envoy", ports["plain"]),
            Arm("envoy + no-op ext_proc", ports["noop"]),
            Arm("envoy + RouteIQ ext_proc", edge_port),
        ]
        pids = {"routeiq": service.proc.pid, "noop": noop.proc.pid, "envoy": envoy.proc.pid}
        results, cpu_ms = _measure(arms, args.requests, args.warmup, pids)
    finally:
        if envoy is not None:
            envoy.stop()
        service.stop()
        noop.stop()
        upstream.stop()

    added = _print_table(results, cpu_ms)
    if args.out is not None:
        report = {
            "benchmark": "envoy_edge",
            "requests_per_arm": args.requests,
            "warmup_per_arm": args.warmup,
            "body_bytes": len(BODY),
            "envoy_version": version,
            "envoy_concurrency": args.envoy_concurrency,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "results": results,
            "cpu_ms_per_request": cpu_ms,
            "ext_proc_added": added,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
