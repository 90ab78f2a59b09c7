"""Static checks of deploy/: no container engine or cluster runs here, so the images, the compose
file and the Kubernetes manifests are checked with the real tools that `make tools` installs
(hadolint, kustomize, kubernetes-validate with its bundled API schemas, Envoy's validate mode,
the Compose Specification's schema), and every service config they carry is loaded by the
service's own Settings model. The capacity guide's Redis sizes are measured again here, on a
real Redis behind a real service."""

from __future__ import annotations

import json
import re
import shlex
import statistics
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from router_service.cli import _parser
from router_service.client import RouterClient, parse_candidates
from router_service.config import Settings, load_settings
from tests.support.envoy import validate as envoy_validate
from tests.support.procs import REPO, ServiceProcess, tool

DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "docker-compose.yaml"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
TRAIN_EXTRA = {"scikit-learn", "skl2onnx", "skops", "scipy", "safetensors", "tqdm", "matplotlib"}
# tqdm reaches the serving path anyway, through tokenizers' hub client
TRAIN_ONLY = TRAIN_EXTRA - {"tqdm"}
NS = "routeiq"


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def _deploy_python() -> Path:
    python = REPO / ".tools" / "deploy" / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} not found: run `make tools`")
    return python


# --- requirements ---------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", path.read_text(), flags=re.M)
    return {name.lower(): version for name, version in pins}


def test_the_lock_files_agree_and_serve_holds_no_training_library() -> None:
    req = REPO / "requirements"
    lock, serve, train, edge = (_pins(req / f"{n}.txt") for n in ("lock", "serve", "train", "edge"))
    assert not TRAIN_ONLY & set(serve), sorted(TRAIN_ONLY & set(serve))
    assert {"grpcio", "onnxruntime", "onnx", "tokenizers", "redis", "boto3"} <= set(serve)
    assert set(train) >= TRAIN_ONLY
    build = _pins(req / "build.txt")
    assert set(build) == {"setuptools"} and int(build["setuptools"].split(".")[0]) >= 71
    for name, file in (("serve", serve), ("train", train), ("build", build)):
        assert {n: v for n, v in file.items() if lock.get(n) != v} == {}, name
    for name, version in _pins(req / "edge-litellm.txt").items():
        assert edge[name] == version, name
    assert set(serve) <= set(edge)
    assert serve["python-dateutil"].startswith("2.")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["dependencies"]}
    assert not base & TRAIN_EXTRA
    extra = {re.split(r"[<>=\[ ]", d)[0].lower() for d in project["optional-dependencies"]["train"]}
    assert extra == TRAIN_EXTRA


# --- Dockerfile -----------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            current = [(keyword, args)]
            stages[args.split()[-1]] = current
        else:
            current.append((keyword, args))
    return stages


def _one(stage: list[tuple[str, str]], keyword: str) -> str:
    (found,) = [args for k, args in stage if k == keyword]
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    out = _run(tool("hadolint"), DOCKERFILE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_fails_an_unpinned_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nCMD python app.py\n")
    out = _run(tool("hadolint"), bad)
    assert out.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", out.stdout))


def test_the_images_are_pinned_hash_locked_and_non_root() -> None:
    stages = _stages()
    assert list(stages)[-1] == "router"  # the default target
    base = _one(stages["python"], "FROM").split()[0]
    minor = re.fullmatch(r"python:3\.(\d+)\.\d+-slim-[a-z]+", base)
    assert minor and minor.group(1) == "11", base
    for name, lock in (
        ("serve-venv", "serve"),
        ("edge-venv", "edge"),
        ("bundles", "train"),
    ):
        stage = stages[name]
        assert ("COPY", f"requirements/{lock}.txt /tmp/requirements.txt") in stage
        runs = " ".join(args for k, args in stage if k == "RUN")
        assert "--require-hashes -r /tmp/requirements.txt" in runs
        assert "--no-deps /wheels/routeiq_router-" in runs
    wheel = stages["wheel"]
    assert ("COPY", "requirements/build.txt /tmp/requirements.txt") in wheel
    runs = " ".join(args for k, args in wheel if k == "RUN")
    assert "--require-hashes -r /tmp/requirements.txt" in runs
    assert "wheel --no-deps --no-build-isolation" in runs
    # the runtimes take the venvs only: no compiler, no wheel cache, no training library
    for name, venv in (("router", "serve-venv"), ("litellm-edge", "edge-venv")):
        copies = [a for k, a in stages[name] if k == "COPY" and a.startswith("--from=")]
        assert f"--from={venv} /opt/routeiq/ /opt/routeiq/" in copies
        assert not any(a.startswith(("--from=wheel", "--from=python")) for a in copies)
    for name in ("router", "litellm-edge"):
        user = _one(stages[name], "USER")
        assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user


def test_the_router_image_serves_the_baked_bundles_and_checks_its_health() -> None:
    stages = _stages()
    router = stages["router"]
    command = json.loads(_one(router, "CMD"))
    assert json.loads(_one(router, "ENTRYPOINT")) == ["routeiq-router"]
    serve = _parser().parse_args(command)
    assert serve.command == "serve"
    trained = re.findall(r"--out /bundles/(\w+)", " ".join(a for _, a in stages["bundles"]))
    assert [str(p) for p in serve.bundle] == [f"/srv/routeiq/bundles/{b}" for b in trained]
    assert ("COPY", "--from=bundles /bundles/ /srv/routeiq/bundles/") in router
    makefile = (REPO / "Makefile").read_text()
    router_kind = re.search(r"DEFAULT_ROUTER \?= (\w+)", makefile)
    featurizer = re.search(r"DEFAULT_FEATURIZER \?= (\w+)", makefile)
    assert router_kind and featurizer
    train_runs = " ".join(a for k, a in stages["bundles"] if k == "RUN")
    assert (
        f"--router {router_kind.group(1)} --featurizer {featurizer.group(1)} --out /bundles/default"
    ) in train_runs
    health = _one(router, "HEALTHCHECK")
    check = json.loads(health.split("CMD", 1)[1])
    assert check[0] == "routeiq-router"
    parsed = _parser().parse_args(check[1:])
    assert parsed.command == "health"
    assert parsed.target == f"127.0.0.1:{serve.port}"
    assert f"EXPOSE {serve.port}" in f"EXPOSE {_one(router, 'EXPOSE')}"
    assert _one(router, "VOLUME") == '["/srv/routeiq/var"]'
    assert _one(router, "WORKDIR") == "/srv/routeiq"


def test_the_build_context_admits_what_the_stages_copy() -> None:
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    admitted = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert "*" in ignore
    for stage in _stages().values():
        for keyword, args in stage:
            if keyword != "COPY" or args.startswith("--from"):
                continue
            *sources, _ = shlex.split(args)
            for source in sources:
                path = source.rstrip("/")
                assert (REPO / path).exists(), source
                assert any(path == a or path.startswith(a + "/") for a in admitted), source


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = _run(tool("kustomize"), "build", K8S / "overlays" / request.param)
    assert out.returncode == 0, out.stderr
    path = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    path.write_text(out.stdout)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return request.param, path, docs


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [
        d
        for d in docs
        if d["kind"] == kind and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    assert len(found) == 1, (kind, name)
    return found[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_each_overlay_validates_against_the_kubernetes_api_schemas(rendered: Any) -> None:
    _, path, docs = rendered
    out = _run(tool("kubernetes-validate"), "--strict", "--quiet", path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {d["metadata"].get("namespace", NS) for d in docs} == {NS}


def test_kubernetes_validate_refuses_an_unknown_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
        "spec: {clusterIP: None, portz: [{port: 1}]}\n"
    )
    out = _run(tool("kubernetes-validate"), "--strict", "--quiet", bad)
    assert out.returncode != 0


@pytest.fixture
def router_settings(rendered: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The ConfigMap's config.yaml with the Deployment's ROUTEIQ_* variables, loaded by the
    service's own settings model (unknown keys and bad values raise)."""
    _, _, docs = rendered
    config = tmp_path / "config.yaml"
    config.write_text(_find(docs, "ConfigMap", "routeiq-router-config")["data"]["config.yaml"])
    for name in [n for n in __import__("os").environ if n.startswith("ROUTEIQ_")]:
        monkeypatch.delenv(name)
    for var in _container(_find(docs, "Deployment", "routeiq-router")).get("env", []):
        if var["name"].startswith("ROUTEIQ_"):
            monkeypatch.setenv(var["name"], var["value"])
    return load_settings(config)


def test_the_router_config_is_valid_and_fits_the_pod(rendered: Any, router_settings: Any) -> None:
    overlay, _, docs = rendered
    settings: Settings = router_settings
    deployment = _find(docs, "Deployment", "routeiq-router")
    container, pod = _container(deployment), deployment["spec"]["template"]["spec"]
    assert settings.registry.source == "s3://routeiq-registry/routers"
    assert settings.cache.redis.url is not None
    assert settings.cache.redis.cluster is (overlay == "prod")
    assert [str(p) for p in settings.bundles.paths] == [
        "/srv/routeiq/bundles/default",
        "/srv/routeiq/bundles/tier",
    ]
    assert container["args"] == ["serve", "--config", "/etc/routeiq/config.yaml"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == settings.server.port and ports["metrics"] == settings.metrics.port
    assert settings.server.host == "0.0.0.0"
    # every path the service writes is on a writable volume: the root filesystem is read-only
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    writable = [p for p, v in mounts.items() if "emptyDir" in v]
    for path in (
        settings.telemetry.outcomes_path,
        settings.telemetry.shadow_path,
        settings.telemetry.events.path,
        settings.registry.cache_dir,
    ):
        assert any(str(path).startswith(w + "/") for w in writable), path
    key = settings.telemetry.events.hash_key_file
    assert any(str(key).startswith(p + "/") and "secret" in v for p, v in mounts.items())
    if overlay == "prod":
        assert settings.tls.enabled and settings.tls.client_ca_file is not None
        assert ports["health"] == settings.tls.health_port


def test_the_router_pod_stops_cleanly_and_runs_locked_down(
    rendered: Any, router_settings: Any
) -> None:
    _, _, docs = rendered
    settings: Settings = router_settings
    pod = _find(docs, "Deployment", "routeiq-router")["spec"]["template"]["spec"]
    container = _container(_find(docs, "Deployment", "routeiq-router"))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    needed = pre_stop + settings.server.drain_delay_s + settings.server.grace_period_s
    assert pod["terminationGracePeriodSeconds"] >= needed + 5
    probe_port = settings.tls.health_port if settings.tls.enabled else settings.server.port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": probe_port}, probe
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_the_edges_balance_over_the_headless_service(rendered: Any, tmp_path: Path) -> None:
    overlay, _, docs = rendered
    headless = _find(docs, "Service", "routeiq-router")
    assert headless["spec"]["clusterIP"] == "None"
    pod_labels = _find(docs, "Deployment", "routeiq-router")["spec"]["template"]["metadata"]
    assert headless["spec"]["selector"].items() <= pod_labels["labels"].items()
    assert _find(docs, "Service", "routeiq-router-lb")["spec"]["type"] == "ClusterIP"
    (grpc_port,) = [p["port"] for p in headless["spec"]["ports"] if p["name"] == "grpc"]
    fqdn = f"routeiq-router.{NS}.svc.cluster.local"
    env = {
        e["name"]: e.get("value")
        for e in _container(_find(docs, "Deployment", "routeiq-litellm"))["env"]
    }
    assert env["ROUTEIQ_EDGE_TARGET"] == f"dns:///{fqdn}:{grpc_port}"
    envoy_text = _find(docs, "ConfigMap", "routeiq-envoy-config")["data"]["envoy.yaml"]
    clusters = {c["name"]: c for c in yaml.safe_load(envoy_text)["static_resources"]["clusters"]}
    router = clusters["routeiq_router"]
    assert router["type"] == "STRICT_DNS"
    (endpoint,) = router["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == (fqdn, grpc_port)
    if overlay == "prod":
        assert env["ROUTEIQ_EDGE_TLS_SERVER_NAME"] == fqdn
        assert router["transport_socket"]["typed_config"]["sni"] == fqdn
        envoy_text = _with_test_certs(envoy_text, tmp_path)
    config = tmp_path / "envoy.yaml"
    config.write_text(envoy_text)
    out = envoy_validate(config)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr


def _with_test_certs(envoy_text: str, tmp_path: Path) -> str:
    """The prod Envoy config with its /etc/routeiq/tls files replaced by real ones."""
    ca = trustme.CA()
    cert = ca.issue_cert(f"routeiq-router.{NS}.svc.cluster.local")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    return envoy_text.replace("/etc/routeiq/tls/", f"{tmp_path}/")


def test_the_envoy_configs_are_deploy_envoy_yaml() -> None:
    source = (DEPLOY / "envoy" / "envoy.yaml").read_text()
    assert (K8S / "base" / "edge-envoy" / "envoy.yaml").read_text() == source
    prod = yaml.safe_load((K8S / "overlays" / "prod" / "envoy.yaml").read_text())
    for cluster in prod["static_resources"]["clusters"]:
        if cluster["name"] == "routeiq_router":
            assert cluster.pop("transport_socket")["name"] == "envoy.transport_sockets.tls"
    assert prod == yaml.safe_load(source)


def test_autoscaling_disruption_and_network_policy(rendered: Any) -> None:
    _, _, docs = rendered
    deployment = _find(docs, "Deployment", "routeiq-router")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = _find(docs, "HorizontalPodAutoscaler", "routeiq-router")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "routeiq-router",
    }
    (cpu,) = hpa["spec"]["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = _find(docs, "PodDisruptionBudget", "routeiq-router")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        pdb["spec"].get("minAvailable", 0) < hpa["spec"]["minReplicas"]
        or "maxUnavailable" in pdb["spec"]
    )
    policy = _find(docs, "NetworkPolicy", "routeiq-router")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    grpc_rule, metrics_rule = policy["spec"]["ingress"]
    ports = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
    assert grpc_rule["ports"] == [{"port": ports["grpc"], "protocol": "TCP"}]
    assert metrics_rule["ports"] == [{"port": ports["metrics"], "protocol": "TCP"}]
    (clients,) = grpc_rule["from"]
    admitted = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
        and clients["podSelector"]["matchLabels"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    }
    assert admitted == {"routeiq-litellm", "routeiq-envoy"}
    (prometheus,) = metrics_rule["from"]
    assert prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


# --- docker compose -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Iterator[dict[str, Any]]:
    yield yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    schema = REPO / ".tools" / "share" / "compose-spec.json"
    if not schema.exists():
        raise FileNotFoundError(f"{schema} not found: run `make tools`")
    check = (
        "import json, sys, yaml, jsonschema\n"
        "schema = json.load(open(sys.argv[1]))\n"
        "bad = 0\n"
        "for path in sys.argv[2:]:\n"
        "    doc = yaml.safe_load(open(path))\n"
        "    for e in jsonschema.Draft202012Validator(schema).iter_errors(doc):\n"
        "        bad += 1; print(path, list(e.absolute_path), e.message)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = _run(_deploy_python(), "-c", check, schema, COMPOSE)
    assert out.returncode == 0, out.stdout + out.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(COMPOSE.read_text().replace("    image: redis:", "    imagee: redis:"))
    out = _run(_deploy_python(), "-c", check, schema, broken)
    assert out.returncode == 1 and "imagee" in out.stdout


def test_the_compose_services_are_wired(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    assert set(services) == {"router", "litellm", "envoy", "redis", "minio", "minio-init", "jaeger"}
    stages = _stages()
    for name in ("router", "litellm"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["target"] in stages
    for service in services.values():
        for dependency in service.get("depends_on", {}):
            assert dependency in services
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), source
    router = services["router"]
    assert router["read_only"] is True and "/tmp" in router["tmpfs"]
    # no capabilities means no switching users: hardened services start as their own user
    for name, service in services.items():
        if "ALL" in service.get("cap_drop", []):
            user = service.get("user") or _one(stages[service["build"]["target"]], "USER")
            assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), name
    config = COMPOSE.parent / router["volumes"][0].split(":")[0]
    assert router["command"][-1] == router["volumes"][0].split(":")[1]
    for name in [n for n in __import__("os").environ if n.startswith("ROUTEIQ_")]:
        monkeypatch.delenv(name)
    settings = load_settings(config)
    assert settings.cache.redis.url == "redis://redis:6379/0"
    assert settings.registry.s3.endpoint_url == "http://minio:9000"
    aliases = {
        alias: name
        for name, s in services.items()
        for alias in s.get("networks", {}).get("default", {}).get("aliases", [])
    }
    assert aliases["otel-collector"] == "jaeger"
    assert settings.telemetry.tracing.endpoint == "http://otel-collector:4317"
    # Envoy runs deploy/envoy/envoy.yaml unchanged: its ext_proc cluster's name is the router's
    envoy_source = services["envoy"]["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / envoy_source).resolve() == DEPLOY / "envoy" / "envoy.yaml"
    clusters = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())["static_resources"]
    (router_cluster,) = [c for c in clusters["clusters"] if c["name"] == "routeiq_router"]
    (endpoint,) = router_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert aliases[address["address"]] == "router"
    assert address["port_value"] == settings.server.port
    target = services["litellm"]["environment"]["ROUTEIQ_EDGE_TARGET"]
    assert target == f"dns:///router:{settings.server.port}"
    # the ext_proc routes' candidates are models Envoy routes somewhere
    names = [c.name for r in settings.ext_proc.routes for c in r.candidates]
    assert names and all(n.startswith(("gpt-", "claude-", "meta-llama/")) for n in names)


# --- the capacity guide's Redis sizes -------------------------------------------------------

# README "Capacity guide": MEMORY USAGE of a prediction and a feature key, and their TTLs
GUIDE = {"p": (184, 600), "f": (1384, 86400)}


def test_the_capacity_guides_redis_sizes_hold(redis_server: Any, default_bundle: Path) -> None:
    readme = (REPO / "README.md").read_text().split("### Capacity guide", 1)[1]
    for size, ttl in GUIDE.values():
        assert f"{size:,} B" in readme and f"{ttl:,} s" in readme
    service = ServiceProcess(
        ["--bundle", str(default_bundle)],
        env={
            "ROUTEIQ_CACHE__REDIS__URL": redis_server.url,
            "ROUTEIQ_TELEMETRY__EVENTS__STORE": "jsonl",
        },
    ).wait_ready(60)
    data = REPO / "converters" / "data" / "llmrouter" / "dcrouter_preprocessed" / "test.json"
    prompts = [q["question"] for q in json.loads(data.read_text())][:60]
    client = RouterClient(service.target, 10)
    try:
        for prompt in prompts:
            client.route(prompt, parse_candidates("qwen2.5-7b-instruct,gemma-2-9b-it"))
    finally:
        client.close()
        assert service.stop() == 0
    keys = redis_server.cli("--scan", "--pattern", "riq:*").split()
    for kind, (size, ttl) in GUIDE.items():
        mine = [k for k in keys if k.startswith(f"riq:{kind}:")]
        assert len(mine) == len(prompts), kind
        usage = statistics.median(int(redis_server.cli("MEMORY", "USAGE", k)) for k in mine)
        assert abs(usage - size) <= 0.1 * size, (kind, usage)
        left = int(redis_server.cli("TTL", mine[0]))
        assert ttl - 30 <= left <= ttl, (kind, left)
