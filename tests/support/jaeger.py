"""A real Jaeger backend for tests: OTLP receivers (gRPC and HTTP) and the query API on free
ports, traces kept in memory, stopped by pid. Built by ``make tools`` (``.tools/bin/jaeger``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.procs import free_port, stop_process, tool

_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    enable_tracing: false   # else it exports its own spans to :4317 and stops slowly
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class JaegerServer:
    def __init__(self) -> None:
        ports = {
            name: free_port()
            for name in ("health", "query", "query_grpc", "otlp_grpc", "otlp_http")
        }
        self.dir = Path(tempfile.mkdtemp(prefix="routeiq-jaeger-"))
        config = self.dir / "jaeger.yaml"
        config.write_text(_CONFIG.format(**ports))
        self.otlp_grpc = f"http://127.0.0.1:{ports['otlp_grpc']}"
        self.otlp_http = f"http://127.0.0.1:{ports['otlp_http']}/v1/traces"
        self.query = f"http://127.0.0.1:{ports['query']}"
        self._health = f"http://127.0.0.1:{ports['health']}/status"
        self.log_path = self.dir / "jaeger.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [tool("jaeger"), "--config", f"file:{config}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jaeger exited: {self.log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(self._health, timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise TimeoutError(f"jaeger not healthy after {timeout_s:.0f} s")

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as Jaeger's query API returns it, or None when it has no spans yet."""
        try:
            with urllib.request.urlopen(f"{self.query}/api/traces/{trace_id}", timeout=5) as r:
                data = json.load(r)["data"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return data[0] if data else None

    def wait_for(
        self, trace_id: str, expected: dict[str, set[str]], timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The trace once every service in ``expected`` has sent spans, including one of each
        operation named for it (spans arrive in batches, from several processes, so one
        service's first batch may not hold the span a test looks for)."""
        deadline = time.monotonic() + timeout_s
        missing: dict[str, set[str]] = expected
        while time.monotonic() < deadline:
            found = self.trace(trace_id)
            if found is not None:
                missing = _missing(found, expected)
                if not missing:
                    return found
            time.sleep(0.2)
        raise TimeoutError(f"trace {trace_id} still lacks {missing}")

    def stop(self) -> None:
        stop_process(self.proc, 10.0)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _missing(trace: dict[str, Any], expected: dict[str, set[str]]) -> dict[str, set[str]]:
    """What of ``expected`` (service → operation names) the trace does not hold yet; a service
    with no spans at all is missing even when no operation is named for it."""
    present = service_names(trace)
    missing = {}
    for service, operations in expected.items():
        names = {s["operationName"] for s in spans_of(trace, service)}
        if service not in present or not operations <= names:
            missing[service] = operations - names
    return missing


def service_names(trace: dict[str, Any]) -> set[str]:
    return {p["serviceName"] for p in trace["processes"].values()}


def spans_of(trace: dict[str, Any], service: str) -> list[dict[str, Any]]:
    ids = {pid for pid, p in trace["processes"].items() if p["serviceName"] == service}
    return [s for s in trace["spans"] if s["processID"] in ids]
