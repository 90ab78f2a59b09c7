"""Running ghz and reading its JSON report (``-O json``)."""

from __future__ import annotations

import gzip
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.procs import REPO, tool

__all__ = ["GhzResult", "Load", "ghz_path", "ghz_version", "parse_report", "pinned", "run_ghz"]

PROTO = REPO / "proto" / "routeiq" / "router" / "v1" / "router.proto"
SERVICE = "routeiq.router.v1.Router"
INSTALL_HINT = "ghz not found: run benchmarks/install_ghz.sh (installs it into .tools/bin)"


def ghz_path() -> str:
    found = tool("ghz")
    if found is None:
        raise FileNotFoundError(INSTALL_HINT)
    return found


def ghz_version() -> str:
    out = subprocess.run([ghz_path(), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip() or out.stderr.strip()


@dataclass(frozen=True)
class Load:
    """One ghz invocation: ``total`` requests, or for ``duration_s`` when it is set."""

    method: str  # Route or RouteBatch
    data: Path  # count-delimited binary requests
    concurrency: int
    connections: int = 1
    total: int = 200
    duration_s: float | None = None
    timeout_s: float = 20.0
    ca_file: Path | None = None  # TLS: the CA of the server's certificate (else plaintext)
    server_name: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def argv(self, target: str, out: Path) -> list[str]:
        argv = [ghz_path(), "--proto", str(PROTO)]
        if self.ca_file is None:
            argv += ["--insecure"]
        else:
            argv += ["--cacert", str(self.ca_file)]
            if self.server_name:
                argv += ["--cname", self.server_name]
        if self.metadata:
            argv += ["--metadata", json.dumps(dict(self.metadata))]
        argv += ["--call", f"{SERVICE}/{self.method}", "--binary-file", str(self.data)]
        argv += ["--concurrency", str(self.concurrency)]
        argv += ["--connections", str(min(self.connections, self.concurrency))]
        argv += ["--timeout", f"{self.timeout_s:g}s", "--format", "json", "--output", str(out)]
        if self.duration_s is not None:
            # ignore: calls still in flight at the end are left out of the report, not errors
            argv += ["--duration", f"{self.duration_s:g}s", "--duration-stop", "ignore"]
        else:
            argv += ["--total", str(self.total)]
        return [*argv, target]


@dataclass(frozen=True)
class GhzResult:
    count: int
    ok: int
    errors: int
    rps: float
    avg_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    status: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)


def _ms(ns: float) -> float:
    return ns / 1e6


def parse_report(report: dict[str, Any]) -> GhzResult:
    """The numbers the summary needs from one ghz JSON report (latencies of OK calls only)."""
    status = {str(k): int(v) for k, v in (report.get("statusCodeDistribution") or {}).items()}
    pct = {int(d["percentage"]): float(d["latency"]) for d in report["latencyDistribution"] or []}
    ok = status.get("OK", 0)
    errors = report.get("errorDistribution") or {}
    return GhzResult(
        count=int(report["count"]),
        ok=ok,
        errors=sum(status.values()) - ok,
        rps=float(report["rps"]),
        avg_ms=_ms(float(report["average"])),
        p50_ms=_ms(pct.get(50, 0.0)),
        p90_ms=_ms(pct.get(90, 0.0)),
        p99_ms=_ms(pct.get(99, 0.0)),
        status=status,
        error_kinds={str(k)[:160]: int(v) for k, v in errors.items()},
    )


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """``argv`` run on CPU ``cpu`` only (``taskset -c``); unchanged for ``None``."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def run_ghz(load: Load, target: str, out: Path, cpu: int | None = None) -> GhzResult:
    """Run ghz (on CPU ``cpu`` only, when given), keep its raw report gzipped at ``out``
    (``.json.gz``), return the parsed one."""
    plain = out.with_suffix("")  # NAME.json.gz -> NAME.json
    limit = (load.duration_s or 0) + load.timeout_s + 120
    argv = pinned(load.argv(target, plain), cpu)
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=limit)
    if done.returncode != 0 or not plain.is_file():
        raise RuntimeError(f"ghz failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    raw = plain.read_bytes().replace(f"{REPO}/".encode(), b"")  # paths relative to the repo
    with gzip.open(out, "wb", compresslevel=6) as fh:
        fh.write(raw)
    plain.unlink()
    return parse_report(json.loads(raw))
