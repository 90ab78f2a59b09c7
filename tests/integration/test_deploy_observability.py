"""The operators' observability files under deploy/ checked against the real service: every
metric, label and label value the Grafana dashboard and the Prometheus alert rules use is one a
real server exposes on /metrics; the dashboard and the rules are well-formed; and the example
OpenTelemetry Collector config, run by a real collector binary (the Jaeger v2 distribution),
carries the service's spans to a real Jaeger backend."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from router_service._proto.envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from router_service.config import Settings
from router_service.proto import pb, pb_grpc
from router_service.server import RouterServer
from tests.support.jaeger import JaegerServer, spans_of
from tests.support.procs import REPO, free_port, stop_process, tool
from tests.support.traffic import KNOWN, metrics_text, route_four_ways, route_request

pytestmark = pytest.mark.integration

DASHBOARD = REPO / "deploy" / "grafana" / "routeiq-router.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
COLLECTOR = REPO / "deploy" / "otel-collector.yaml"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus adds to every scraped series (the target's), not the service's own.
TARGET_LABELS = {"job", "instance"}
# Label values the service documents but a short scrape cannot show (they appear only when
# their event happens: a timeout, a shadow rollout, Redis configured...).
DOCUMENTED_VALUES: dict[tuple[str, str], set[str]] = {
    ("routeiq_fallbacks_total", "reason"): {
        "timeout",
        "shed",
        "unknown_models",
        "no_featurizer",
        "invalid_choice",
        "strategy_error",
        "error",
    },
    ("routeiq_shadow_decisions_total", "result"): {"agree", "disagree", "skipped", "dropped"},
    ("routeiq_cache_requests_total", "tier"): {"lru", "redis", "any"},
    ("routeiq_cache_requests_total", "kind"): {"prediction", "features"},
    ("routeiq_cache_requests_total", "result"): {"hit", "miss", "error", "skipped", "corrupt"},
    ("routeiq_cache_writes_total", "result"): {"ok", "error", "skipped", "dropped"},
    ("routeiq_registry_swaps_total", "side"): {"champion", "challenger"},
}
ANY_FAMILY_VALUES: dict[str, set[str]] = {
    "code": {code.name for code in grpc.StatusCode},
    "source": {v.name for v in pb.Source.DESCRIPTOR.values} - {"SOURCE_UNSPECIFIED"},
}

# Metric families the service must expose (and, like every one it exposes, the dashboard show).
ON_DASHBOARD = {
    "routeiq_rpc_requests_total",
    "routeiq_rpc_seconds",
    "routeiq_rpc_in_flight",
    "routeiq_decisions_total",
    "routeiq_decision_seconds",
    "routeiq_stage_seconds",
    "routeiq_inference_queue_seconds",
    "routeiq_inference_batch_size",
    "routeiq_fallbacks_total",
    "routeiq_shed_total",
    "routeiq_registry_swaps_total",
    "routeiq_registry_refused_total",
    "routeiq_shadow_decisions_total",
    "routeiq_cache_requests_total",
    "routeiq_cache_writes_total",
    "routeiq_cache_breaker_state",
    "routeiq_cache_breaker_opened_total",
    "routeiq_unsafe_loaders_loaded",
    "routeiq_unpickled_classes",
    "routeiq_events_written_total",
    "routeiq_events_dropped_total",
    "routeiq_budget_lambda",
    "routeiq_budget_value",
}

_METRIC = re.compile(r"routeiq_[a-z_]+")
_SELECTOR = re.compile(r"(routeiq_[a-z_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*(routeiq_[a-z_]+)(?:\{[^}]*\})?\s*,\s*(\w+)\s*\)")


# ------------------------------------------------------------------ the files' expressions


def _all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in panels:
        yield panel
        yield from _all_panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = _dashboard()
    exprs = [
        target["expr"]
        for panel in _all_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def _all_exprs() -> list[str]:
    return _dashboard_exprs() + [rule["expr"] for rule in _rules()]


def _closing(text: str, opening: int) -> int:
    """Index of the parenthesis closing the one at ``opening``."""
    depth = 0
    for i in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _opening(text: str, closing: int) -> int:
    """Index of the parenthesis opening the one at ``closing``."""
    depth = 0
    for i in range(closing, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in {text!r}")


def _aggregated(expr: str, match: re.Match[str]) -> str:
    """The expression a ``by``/``without`` clause groups: ``sum by (x) (BODY)`` or
    ``sum(BODY) by (x)``."""
    after = expr[match.end() :].lstrip()
    if after.startswith("("):
        start = match.end() + expr[match.end() :].index("(")
        return expr[start : _closing(expr, start) + 1]
    end = len(expr[: match.start()].rstrip()) - 1
    return expr[_opening(expr, end) : end + 1]


# ------------------------------------------------------------------ the service's scrape


@dataclass
class Scrape:
    help_names: set[str]
    types: dict[str, str]
    labels: dict[str, set[str]] = field(default_factory=dict)  # sample name -> label names
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (family, label)
    declared: dict[str, set[str]] = field(default_factory=dict)  # family -> label names

    def family(self, name: str) -> str | None:
        """The exposed metric family ``name`` (a sample name as PromQL uses it) belongs to."""
        if name in self.help_names:
            return name
        for suffix in HISTOGRAM_SUFFIXES:
            base = name.removesuffix(suffix)
            if base != name and self.types.get(base) == "histogram":
                return base
        return None

    def labels_of(self, name: str) -> set[str]:
        """Label names of ``name``'s samples; for a metric with no sample yet (its event has
        not happened), the label names the serving process declared for it."""
        if name in self.labels:
            return self.labels[name]
        family = self.family(name)
        assert family is not None, name
        extra = {"le"} if name.endswith("_bucket") else set()
        return self.declared.get(family, set()) | extra

    def known_values(self, family: str, label: str) -> set[str]:
        return (
            self.values.get((family, label), set())
            | DOCUMENTED_VALUES.get((family, label), set())
            | ANY_FAMILY_VALUES.get(label, set())
        )


def _parse_scrape(text: str, server: RouterServer) -> Scrape:
    scrape = Scrape(
        help_names=set(re.findall(r"^# HELP (\S+) ", text, re.MULTILINE)),
        types=dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)),
    )
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.labels.setdefault(sample.name, set()).update(sample.labels)
            owner = scrape.family(sample.name) or sample.name
            for label, value in sample.labels.items():
                scrape.values.setdefault((owner, label), set()).add(value)
    for metric in vars(server.metrics).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            scrape.declared[name] = set(metric._labelnames)
    return scrape


async def _scrape_after_traffic(
    default_bundle: Path,
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], Any],
) -> Scrape:
    """A real server with the default bundle after a cache miss, a hit, a fallback (unknown
    candidates), a refused request, a RouteBatch, an outcome report, a health check and an
    ext_proc stream: the labelled series the dashboard and the rules select exist."""
    port = free_port()
    server: RouterServer = await start_server(
        make_settings(bundles=[str(default_bundle)], metrics={"port": port})
    )

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.RouterStub(channel)
        answers = await route_four_ways(stub)
        batch = pb.RouteBatchRequest(requests=[route_request(*KNOWN)])
        await stub.RouteBatch(batch, timeout=10)
        await stub.ReportOutcome(
            pb.ReportOutcomeRequest(request_id="req-1", model=answers.miss.model, latency_ms=12.0),
            timeout=10,
        )
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        stream = ep_grpc.ExternalProcessorStub(channel).Process(iter(()), timeout=5)
        _ = [reply async for reply in stream]
    return _parse_scrape(await asyncio.to_thread(metrics_text, port), server)


def _problems(expr: str, scrape: Scrape) -> list[str]:
    """What in one PromQL expression the service does not expose."""
    found: list[str] = []
    metrics = set(_METRIC.findall(expr))
    for name in sorted(metrics):
        if scrape.family(name) is None:
            found.append(f"metric {name} is not exposed")
    if found:
        return found
    for selector in _SELECTOR.finditer(expr):
        name, family = selector.group(1), scrape.family(selector.group(1))
        assert family is not None
        for label, _op, value in _MATCHER.findall(selector.group(2)):
            if label in TARGET_LABELS:
                continue
            if label not in scrape.labels_of(name):
                found.append(f"{name} has no label {label}")
                continue
            if "$" in value or not re.fullmatch(r"[\w./|-]+", value):
                continue  # a dashboard variable, or a real regex: not a list of values
            for one in value.split("|"):
                if one not in scrape.known_values(family, label):
                    found.append(f'{name}{{{label}="{one}"}}: no such value')
    for clause in _CLAUSE.finditer(expr):
        kind = clause.group(1)
        labels = {s.strip() for s in clause.group(2).split(",") if s.strip()} - TARGET_LABELS
        if kind in ("by", "without"):
            scope = set(_METRIC.findall(_aggregated(expr, clause)))
            for name in sorted(scope):
                for label in sorted(labels - scrape.labels_of(name)):
                    found.append(f"{kind} ({label}) over {name}, which has no label {label}")
        else:  # vector matching: the label is on one side at least
            for label in sorted(labels):
                if not any(label in scrape.labels_of(name) for name in metrics):
                    found.append(f"{kind} ({label}): no metric of the expression has it")
    for call in _LABEL_VALUES.finditer(expr):
        name, label = call.groups()
        if label not in TARGET_LABELS and label not in scrape.labels_of(name):
            found.append(f"label_values over {name}, which has no label {label}")
    for start in (m.end() - 1 for m in re.finditer(r"histogram_quantile\s*\(", expr)):
        body = expr[start : _closing(expr, start) + 1]
        if not re.search(r"\bby\s*\([^)]*\ble\b", body) or "_bucket" not in body:
            found.append(f"histogram_quantile without a rate of _bucket by le: {body}")
    return found


async def test_dashboard_and_alerts_use_only_what_the_service_exposes(
    default_bundle: Path,
    make_settings: Callable[..., Settings],
    start_server: Callable[[Settings], Any],
) -> None:
    scrape = await _scrape_after_traffic(default_bundle, make_settings, start_server)
    # a labelled metric with no sample yet still announces itself (HELP and TYPE lines):
    # these are the metrics whose events a plain server has not had
    assert "routeiq_registry_refused_total" in scrape.help_names
    assert "routeiq_registry_refused_total" not in scrape.labels
    exprs = _all_exprs()
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert len(used) >= 15, sorted(used)  # the expressions were found at all
    problems = {expr: found for expr in exprs if (found := _problems(expr, scrape))}
    assert not problems, json.dumps(problems, indent=1)
    # every metric family the service exposes is on the dashboard
    shown = {scrape.family(name) for expr in _dashboard_exprs() for name in _METRIC.findall(expr)}
    assert scrape.help_names >= ON_DASHBOARD, sorted(ON_DASHBOARD - scrape.help_names)
    families = {n for n in scrape.help_names if not n.endswith("_created")}  # series' birth times
    assert shown >= families, sorted(families - shown)


def test_the_checker_catches_what_the_service_does_not_expose() -> None:
    """The expression checker itself: a wrong name, label, value or grouping is reported."""
    scrape = Scrape(
        help_names={"routeiq_decisions_total", "routeiq_rpc_seconds"},
        types={"routeiq_decisions_total": "counter", "routeiq_rpc_seconds": "histogram"},
        labels={
            "routeiq_decisions_total": {"router", "version", "source"},
            "routeiq_rpc_seconds_bucket": {"method", "le"},
        },
        values={("routeiq_decisions_total", "source"): {"MODEL"}},
    )
    ok = 'sum by (router) (rate(routeiq_decisions_total{job=~"$job", source="FALLBACK"}[5m]))'
    assert _problems(ok, scrape) == []
    assert _problems("rate(routeiq_decision_total[5m])", scrape) == [
        "metric routeiq_decision_total is not exposed"
    ]
    assert _problems('routeiq_decisions_total{reason="x"}', scrape) == [
        "routeiq_decisions_total has no label reason"
    ]
    assert _problems('routeiq_decisions_total{source="FALLBAK"}', scrape) == [
        'routeiq_decisions_total{source="FALLBAK"}: no such value'
    ]
    assert _problems("sum(rate(routeiq_decisions_total[5m])) by (method)", scrape) == [
        "by (method) over routeiq_decisions_total, which has no label method"
    ]
    assert _problems(
        "histogram_quantile(0.99, sum by (method) (rate(routeiq_rpc_seconds_bucket[5m])))", scrape
    ) == [
        "histogram_quantile without a rate of _bucket by le: "
        "(0.99, sum by (method) (rate(routeiq_rpc_seconds_bucket[5m])))"
    ]


# ------------------------------------------------------------------ well-formed files


def test_dashboard_is_importable_with_a_query_per_panel() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= variables.keys()
    panels = list(_all_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), ids
    titles = [panel["title"] for panel in panels]
    assert len(titles) == len(set(titles)), titles
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x, y, w, h, other in boxes:  # no two panels overlap on the grid
            apart = (
                pos["x"] >= x + w
                or x >= pos["x"] + pos["w"]
                or pos["y"] >= y + h
                or y >= pos["y"] + pos["h"]
            )
            assert apart, f"{panel['title']} overlaps {other}"
        boxes.append((pos["x"], pos["y"], pos["w"], pos["h"], panel["title"]))
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel.get("description"), panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert all(t.get("expr", "").strip() for t in targets), panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
    rows = {panel["title"] for panel in panels if panel["type"] == "row"}
    assert len(rows) >= 6, rows
    assert len(panels) - len(rows) >= 20


def test_alert_rules_are_complete() -> None:
    loaded = yaml.safe_load(ALERTS.read_text())
    assert loaded["groups"]
    rules = _rules()
    assert len(rules) >= 9
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smhd]", str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
    exprs = " ".join(rule["expr"] for rule in rules)
    for needed in (
        'source="FALLBACK"',
        'reason=~"timeout|shed"',
        "routeiq_rpc_seconds_bucket",
        "UNAVAILABLE|INTERNAL|UNKNOWN",
        "routeiq_cache_breaker_state",
        "routeiq_registry_refused_total",
        "routeiq_unsafe_loaders_loaded",
        "routeiq_unpickled_classes",
        "routeiq_events_dropped_total",
    ):
        assert needed in exprs, needed
    assert "INVALID_ARGUMENT" not in exprs  # the caller's fault never alerts the operator


# ------------------------------------------------------------------ the collector config


class Collector:
    """``deploy/otel-collector.yaml`` run by the Jaeger v2 binary (an OpenTelemetry Collector
    distribution) as it is, with only its listen and export addresses moved by ``--set``:
    OTLP in on free ports of 127.0.0.1, out to ``exporter`` (host:port), no self-metrics."""

    def __init__(self, exporter: str) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="routeiq-collector-"))
        self.log_path = self.dir / "collector.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                tool("jaeger"),
                "--config",
                f"file:{COLLECTOR}",
                f"--set=receivers.otlp.protocols.grpc.endpoint=127.0.0.1:{self.grpc_port}",
                f"--set=receivers.otlp.protocols.http.endpoint=127.0.0.1:{self.http_port}",
                f"--set=exporters.otlp/jaeger.endpoint={exporter}",
                "--set=service.telemetry.metrics.level=none",
                "--set=service.telemetry.logs.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.otlp_grpc = f"http://127.0.0.1:{self.grpc_port}"

    def wait_listening(self, timeout_s: float = 30.0) -> Collector:
        deadline = time.monotonic() + timeout_s
        pending = {self.grpc_port, self.http_port}
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited: {self.log()}")
            for port in list(pending):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        pending.discard(port)
            time.sleep(0.05)
        if pending:
            raise TimeoutError(f"collector not listening on {sorted(pending)}: {self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc, 10.0)
        self._log.close()


def test_collector_config_uses_components_of_both_distributions() -> None:
    """Only components the Jaeger binary has, and collector-contrib has too (the stock ones)."""
    config = yaml.safe_load(COLLECTOR.read_text())
    listed = subprocess.run(
        [tool("jaeger"), "components"], capture_output=True, text=True, check=True, timeout=60
    )
    available = yaml.safe_load(listed.stdout)
    kinds = {"receivers", "processors", "exporters", "extensions", "connectors"}
    for kind in kinds & config.keys():
        names = {entry["name"] for entry in available.get(kind) or []}
        for component in config[kind]:
            assert component.split("/")[0] in names, f"{kind}: {component}"
    assert set(config["processors"]) == {"memory_limiter", "batch"}
    traces = config["service"]["pipelines"]["traces"]
    assert traces["processors"] == ["memory_limiter", "batch"]  # the limiter first
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    exporter = config["exporters"][traces["exporters"][0]]
    assert exporter["endpoint"] == "jaeger:4317" and exporter["tls"]["insecure"] is True


async def test_collector_config_carries_the_services_spans_to_jaeger(
    default_bundle: Path, make_settings: Callable[..., Settings], jaeger_server: JaegerServer
) -> None:
    backend = jaeger_server.otlp_grpc.removeprefix("http://")
    collector = await asyncio.to_thread(lambda: Collector(backend).wait_listening())
    trace_id = secrets.token_hex(16)
    try:
        settings = make_settings(
            bundles=[str(default_bundle)],
            telemetry={"tracing": {"enabled": True, "endpoint": collector.otlp_grpc}},
        )
        server = RouterServer(settings)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                answer = await pb_grpc.RouterStub(channel).Route(
                    pb.RouteRequest(
                        prompt="how many moons does mars have?",
                        candidates=[pb.Candidate(name=n) for n in KNOWN],
                    ),
                    metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),),
                    timeout=10,
                )
        finally:
            await server.stop(0)  # flushes the spans to the collector
        found = await asyncio.to_thread(
            jaeger_server.wait_for,
            trace_id,
            {"routeiq-router": {"/routeiq.router.v1.Router/Route", "routeiq.route"}},
        )
    finally:
        await asyncio.to_thread(collector.stop)
    names = {span["operationName"] for span in spans_of(found, "routeiq-router")}
    assert {"/routeiq.router.v1.Router/Route", "routeiq.route"} <= names, names
    assert answer.model in KNOWN
