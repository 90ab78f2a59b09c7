"""What TLS and token auth cost on the fastest path: cache-hit throughput and latency of the
service over plaintext, TLS, and TLS with a bearer token, in one run.

Three service processes (the default bundle, LRU on, one repeated prompt: every call after the
first is a cache hit), each pinned to CPU 0 while it is measured; ghz pinned to CPU 1. Rounds
interleave the three arms (``--rounds`` of each), at 64 calls in flight (throughput) and at 1
(latency); medians reported with the ratio to plaintext. Certificates from trustme.

    python -m benchmarks.security_overhead [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trustme
import yaml

from benchmarks.ghz import Load, pinned, run_ghz
from benchmarks.procs import REPO, Proc, free_ports, service_argv
from benchmarks.workload import candidates_from_bundle, route_requests, write_delimited
from edge.devtools.processes import wait_serving
from router_service.client import bearer_metadata
from router_service.security.auth import hash_token

BUNDLE = REPO / "var" / "bundles" / "default"
NAME = "routeiq.bench"
PROMPT = "How many prime numbers are there below one hundred?"
TOKEN = "bench-token-5b7e0c1d9a"  # a throwaway token of this benchmark's own service


def _arms(work: Path) -> dict[str, dict[str, Any]]:
    ca = trustme.CA()
    cert = ca.issue_cert(NAME)
    (work / "ca.pem").write_bytes(ca.cert_pem.bytes())
    cert.cert_chain_pems[0].write_to_path(str(work / "server.pem"))
    cert.private_key_pem.write_to_path(str(work / "server.key"))
    tls = {"cert_file": str(work / "server.pem"), "key_file": str(work / "server.key")}
    auth = {"tokens": [{"sha256": hash_token(TOKEN), "tenant": "bench"}]}
    return {
        "plaintext": {"config": {}, "load": {}},
        "tls": {
            "config": {"tls": tls},
            "load": {"ca_file": work / "ca.pem", "server_name": NAME},
        },
        "tls+token": {
            "config": {"tls": tls, "auth": auth},
            "load": {
                "ca_file": work / "ca.pem",
                "server_name": NAME,
                "metadata": bearer_metadata(TOKEN),
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/security-<UTC>")
    args = ap.parse_args(argv)
    if not (BUNDLE / "manifest.json").is_file():
        raise SystemExit("no default bundle: run `make bundle` first")
    stamp = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime())
    out = args.out or REPO / "benchmarks" / "results" / f"security-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="routeiq-security-bench-"))
    router = json.loads((BUNDLE / "manifest.json").read_text())["name"]
    data = write_delimited(
        work / "hit.bin", route_requests([PROMPT], candidates_from_bundle(BUNDLE), router)
    )
    arms = _arms(work)
    procs: dict[str, tuple[Proc, str]] = {}
    results: dict[str, dict[int, list[Any]]] = {a: {64: [], 1: []} for a in arms}
    try:
        for name, arm in arms.items():
            port, health = free_ports(1), free_ports(1)
            cfg = arm["config"] | {"log_level": "WARNING"}
            if "tls" in cfg:  # health in plaintext on a port of its own, for the wait below
                cfg["tls"] = cfg["tls"] | {"health_port": health}
            else:
                health = port
            config = work / f"{name}.yaml"
            config.write_text(yaml.safe_dump(cfg))
            proc = Proc(pinned(service_argv(port, config, [BUNDLE], 1), 0), out, name, {})
            wait_serving(f"127.0.0.1:{health}", proc.proc, timeout_s=60)
            procs[name] = (proc, f"127.0.0.1:{port}")
        for r in range(args.rounds):
            for conc in (64, 1):
                for name, arm in arms.items():
                    _, target = procs[name]
                    load = Load("Route", data, conc, duration_s=args.seconds, **arm["load"])
                    res = run_ghz(load, target, out / f"{name}-c{conc}-r{r}.json.gz", cpu=1)
                    if res.errors:
                        raise RuntimeError(f"{name}: {res.errors} failed calls: {res.error_kinds}")
                    results[name][conc].append(res)
                    print(
                        f"round {r + 1}/{args.rounds} c={conc:<2} {name:10s} "
                        f"{res.rps:7.0f}/s  p50 {res.p50_ms:.3f} ms  p99 {res.p99_ms:.3f} ms",
                        flush=True,
                    )
    finally:
        for proc, _ in procs.values():
            proc.stop()
            proc.compress_log()
    summary: dict[str, Any] = {"rounds": args.rounds, "seconds": args.seconds, "arms": {}}
    base = statistics.median(r.rps for r in results["plaintext"][64])
    base_p50 = statistics.median(r.p50_ms for r in results["plaintext"][1])
    print("\narm        c=64 calls/s (vs plaintext)   c=1 p50 / p99 ms (vs plaintext)")
    for name, by_conc in results.items():
        rps = statistics.median(r.rps for r in by_conc[64])
        p50 = statistics.median(r.p50_ms for r in by_conc[1])
        p99 = statistics.median(r.p99_ms for r in by_conc[1])
        summary["arms"][name] = {
            "rps_c64": rps,
            "ratio_c64": rps / base,
            "p50_ms_c1": p50,
            "p99_ms_c1": p99,
            "p50_delta_us_c1": (p50 - base_p50) * 1000,
        }
        print(
            f"{name:10s} {rps:8.0f} ({rps / base:.2f}x)            "
            f"{p50:.3f} / {p99:.3f} (+{(p50 - base_p50) * 1000:.0f} µs)"
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"results: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
