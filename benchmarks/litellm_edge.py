"""LiteLLM proxy latency with the RouteIQ plug-in vs the proxy's own ``simple-shuffle``.

    python benchmarks/litellm_edge.py [--requests 300] [--out results.json]

One proxy process serves two model groups over the same two fake upstreams: ``routeiq-auto``,
which the plug-in routes (``ROUTEIQ_EDGE_MODEL_GROUPS=routeiq-auto``), and ``shuffle-auto``,
which it leaves to ``simple-shuffle``. Requests alternate between the groups (the order flips
every round), one at a time, over one keep-alive HTTP connection each, so both configurations
share the build, the upstreams, the machine's load and the time window. The router service is
the real ``routeiq-router serve`` process with its ``cheapest`` static router.

Reports client-side latency p50/p99/mean per configuration, the p50 difference (target: the
plug-in adds at most 1 ms), and the plug-in's own time (``x-routeiq-edge-us``) and the service's
(``x-routeiq-latency-us``); ``--out`` writes it all as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.devtools.fake_upstream import FakeUpstream  # noqa: E402
from tests.support.litellm_proxy import LiteLLMProxy, deployment, proxy_config  # noqa: E402
from tests.support.procs import ServiceProcess  # noqa: E402

GROUPS = {"plug-in": "routeiq-auto", "simple-shuffle": "shuffle-auto"}
PROMPTS = ["Summarise this paragraph.", "What is 17 * 23?", "Write a limerick.", "Explain DNS."]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 0.50),
        "p90_ms": percentile(values, 0.90),
        "p99_ms": percentile(values, 0.99),
        "mean_ms": statistics.fmean(values),
    }


class Client:
    """One keep-alive connection; ``post`` returns (latency ms, headers)."""

    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    def post(self, group: str, prompt: str) -> tuple[float, dict[str, str]]:
        body = json.dumps({"model": group, "messages": [{"role": "user", "content": prompt}]})
        started = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", body, self.headers)
        reply = self.conn.getresponse()
        data = reply.read()
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status != 200:
            raise RuntimeError(f"{group}: HTTP {reply.status}: {data[:200]!r}")
        return elapsed, {k.lower(): v for k, v in reply.getheaders()}


def run(requests: int, warmup: int, gap_s: float) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    ups = [FakeUpstream("A"), FakeUpstream("B")]
    tmp = Path(tempfile.mkdtemp(prefix="routeiq-bench-"))
    svc = ServiceProcess(["--config", str(_service_config(tmp))]).wait_ready()
    proxy: LiteLLMProxy | None = None
    try:
        entries = [
            deployment(group, f"openai/model-{up.name.lower()}", f"{up.base_url}/v1", *price)
            for group in GROUPS.values()
            for up, price in zip(ups, [(3e-6, 15e-6), (1.5e-7, 6e-7)], strict=True)
        ]
        config = proxy_config(tmp / "proxy.yaml", entries, num_retries=0)
        env = {"ROUTEIQ_EDGE_TARGET": svc.target, "ROUTEIQ_EDGE_MODEL_GROUPS": GROUPS["plug-in"]}
        print("starting the proxy (5–25 s)…", flush=True)
        proxy = LiteLLMProxy(config, env=env).wait_ready()
        clients = {name: Client(proxy.port, proxy.master_key) for name in GROUPS}
        latencies: dict[str, list[float]] = {name: [] for name in GROUPS}
        edge_us: list[float] = []
        service_us: list[float] = []
        fail_open = 0
        for i in range(warmup + requests):
            order = list(GROUPS) if i % 2 == 0 else list(reversed(GROUPS))
            for name in order:
                time.sleep(gap_s)
                elapsed, headers = clients[name].post(GROUPS[name], PROMPTS[i % len(PROMPTS)])
                if i < warmup:
                    continue
                latencies[name].append(elapsed)
                if name == "plug-in":
                    fail_open += "x-routeiq-fail-open" in headers
                    if "x-routeiq-fail-open" in headers and fail_open <= 3:
                        print("fail-open:", headers["x-routeiq-fail-open"], flush=True)
                    edge_us.append(float(headers.get("x-routeiq-edge-us", "nan")))
                    service_us.append(float(headers.get("x-routeiq-latency-us", "nan")))
            if i and i % 100 == 0:
                print(f"  {i}/{warmup + requests} rounds", flush=True)
    finally:
        if proxy is not None:
            proxy.stop()
        svc.stop()
        for up in ups:
            up.stop()
    result = {name: summary(values) for name, values in latencies.items()}
    routed = [v for v in edge_us if v == v]  # drop NaN (failed-open picks)
    return {
        "requests_per_config": requests,
        "warmup_rounds": warmup,
        "gap_ms": gap_s * 1000,
        "results": result,
        "p50_added_ms": result["plug-in"]["p50_ms"] - result["simple-shuffle"]["p50_ms"],
        "p99_added_ms": result["plug-in"]["p99_ms"] - result["simple-shuffle"]["p99_ms"],
        "plugin_hook_us": {"p50": percentile(routed, 0.5), "p99": percentile(routed, 0.99)}
        if routed
        else None,
        "service_us_p50": percentile([v for v in service_us if v == v], 0.5) if routed else None,
        "fail_open": fail_open,
        # other work on the machine skews both configurations; the 1-minute load says how much
        "load_avg_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "cores": os.cpu_count(),
    }


def _service_config(tmp: Path) -> Path:
    path = tmp / "service.yaml"
    path.write_text(
        f"default_router: cheapest\ntelemetry:\n  outcomes_path: {tmp / 'outcomes.jsonl'}\n"
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per configuration")
    parser.add_argument("--warmup", type=int, default=30, help="rounds not measured")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="idle time before each request (default 0)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    report = run(args.requests, args.warmup, args.gap_ms / 1000)
    print(f"\n{'config':<16}{'n':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, row in report["results"].items():
        print(
            f"{name:<16}{row['n']:>6}{row['p50_ms']:>10.2f}{row['p90_ms']:>10.2f}"
            f"{row['p99_ms']:>10.2f}{row['mean_ms']:>10.2f}"
        )
    hook = report["plugin_hook_us"] or {"p50": float("nan"), "p99": float("nan")}
    print(
        f"\nplug-in adds {report['p50_added_ms']:+.2f} ms at p50, {report['p99_added_ms']:+.2f} ms"
        f" at p99 (target ≤ 1 ms at p50); time in the hook p50 {hook['p50']:.0f} µs, p99"
        f" {hook['p99']:.0f} µs; service p50 {report['service_us_p50']} µs;"
        f" fail-open {report['fail_open']}; load {report['load_avg_1m']}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
