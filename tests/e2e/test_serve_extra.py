"""The serving path installs on its own: a fresh venv with requirements/serve.txt (hash-locked)
and the project's wheel (no dependencies) serves the default learned bundle, answers a real
Route from it, and holds no training library; its ``routeiq-router health`` (the image's
HEALTHCHECK) exits 0 only while the service is SERVING."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from router_service.client import RouterClient, parse_candidates
from router_service.proto import pb
from tests.support.procs import REPO, ServiceProcess, free_port, stop_process, wait_serving

pytestmark = pytest.mark.e2e

TRAIN_ONLY = ("scikit-learn", "skl2onnx", "scipy", "skops", "matplotlib", "safetensors")
PIP = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")
WHEEL = ("-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps")
WHEEL = (*WHEEL, "--no-build-isolation")


def _wheel_sources() -> list[str]:
    """What deploy/docker/Dockerfile's wheel stage copies into its source tree."""
    dockerfile = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    stage = dockerfile.split(" AS wheel\n", 1)[1].split("\nFROM ", 1)[0]
    sources: list[str] = []
    for line in stage.splitlines():
        if line.startswith("COPY ") and "requirements/" not in line:
            sources += [s.rstrip("/") for s in line.split()[1:-1]]
    return sources


def _run(*args: str | Path, timeout: float = 600, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class ServeVenv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.root / "bin" / "routeiq-router"


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory: pytest.TempPathFactory) -> ServeVenv:
    """python -m venv; pip install --require-hashes -r requirements/serve.txt (every dependency
    pinned and hashed, or pip refuses); the project's wheel with --no-deps, as the image does."""
    work = tmp_path_factory.mktemp("serve-venv")
    venv = ServeVenv(work / "venv")
    _run(sys.executable, "-m", "venv", venv.root)
    _run(venv.python, *PIP, "--require-hashes", "-r", REPO / "requirements" / "serve.txt")
    # the wheel as the image's wheel stage builds it: setuptools from requirements/build.txt
    build = ServeVenv(work / "build")
    _run(sys.executable, "-m", "venv", build.root)
    _run(build.python, *PIP, "--require-hashes", "-r", REPO / "requirements" / "build.txt")
    # ... from a copy of what its COPY lines take (setuptools builds in the source tree)
    src = work / "src"
    for name in _wheel_sources():
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    wheels = work / "wheels"
    _run(build.python, *WHEEL, "--wheel-dir", wheels, ".", cwd=src)
    (wheel,) = wheels.glob("routeiq_router-*.whl")
    _run(venv.python, *PIP, "--no-deps", wheel)
    return venv


@dataclass
class Served:
    venv: ServeVenv
    target: str
    proc: subprocess.Popen[bytes]
    run_dir: Path


@pytest.fixture(scope="module")
def served(serve_venv: ServeVenv, default_bundle: Path) -> Iterator[Served]:
    """The fresh venv's ``routeiq-router serve --bundle <default>``, run outside the checkout
    (so nothing is imported from the source tree), with a drain delay to observe at SIGTERM."""
    run_dir = serve_venv.root.parent / "run"
    run_dir.mkdir()
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ROUTEIQ_", "PYTHON", "VIRTUAL"))
    }
    env.update(
        ROUTEIQ_SERVER__DRAIN_DELAY_S="3",
        ROUTEIQ_TELEMETRY__OUTCOMES_PATH=str(run_dir / "outcomes.jsonl"),
        ROUTEIQ_TELEMETRY__SHADOW_PATH=str(run_dir / "shadow.jsonl"),
        ROUTEIQ_TELEMETRY__EVENTS__PATH=str(run_dir / "events.jsonl"),
        ROUTEIQ_TELEMETRY__EVENTS__HASH_KEY_FILE=str(run_dir / "prompt-hash.key"),
    )
    log = (run_dir / "service.log").open("wb")
    command = [serve_venv.cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--bundle", str(default_bundle)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=run_dir,
    )
    try:
        wait_serving(f"127.0.0.1:{port}", proc, timeout_s=60)
        yield Served(serve_venv, f"127.0.0.1:{port}", proc, run_dir)
    finally:
        stop_process(proc, 20)
        log.close()


def _installed(venv: ServeVenv) -> set[str]:
    out = _run(venv.python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check")
    return {line.split("==")[0].lower() for line in out.splitlines() if "==" in line}


def test_the_serve_venv_holds_no_training_library(serve_venv: ServeVenv) -> None:
    installed = _installed(serve_venv)
    assert {"routeiq-router", "onnxruntime", "grpcio", "tokenizers"} <= installed
    assert not installed & set(TRAIN_ONLY), sorted(installed & set(TRAIN_ONLY))
    names = ("sklearn", "skl2onnx", "scipy")
    probe = f"import importlib.util as u; print([m for m in {names!r} if u.find_spec(m)])"
    assert _run(serve_venv.python, "-c", probe).strip() == "[]"


def test_the_serve_venv_answers_from_the_learned_router(served: Served) -> None:
    client = RouterClient(served.target, timeout_s=10)
    try:
        answer = client.route(
            "Write a python function to reverse a linked list",
            parse_candidates("qwen2.5-7b-instruct,llama-3.1-nemotron-51b-instruct,gemma-2-9b-it"),
        )
    finally:
        client.close()
    assert answer.source == pb.Source.MODEL, answer
    assert answer.router == "llmrouter-knn-tfidf"
    assert answer.model in {
        "qwen2.5-7b-instruct",
        "llama-3.1-nemotron-51b-instruct",
        "gemma-2-9b-it",
    }
    assert len(answer.scores) == 3
    # the process serving it is the fresh venv's, which never imported a training library
    maps = Path(f"/proc/{served.proc.pid}/maps").read_text()
    assert str(served.venv.root) in maps
    for package in ("sklearn", "scipy", "skl2onnx"):
        assert f"site-packages/{package}/" not in maps, package


def test_health_exits_0_only_while_serving(served: Served) -> None:
    health = [str(served.venv.cli), "health", "--target", served.target, "--timeout", "2"]
    ok = subprocess.run(health, capture_output=True, text=True, timeout=30, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING"), ok.stderr
    router = subprocess.run(
        [*health, "--service", "routeiq.router.v1.Router"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (router.returncode, router.stdout.strip()) == (0, "SERVING"), router.stderr
    unknown = subprocess.run(
        [*health, "--service", "no.such.Service"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr

    # SIGTERM: the service drains for drain_delay_s, NOT_SERVING while still answering
    os.kill(served.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    draining = None
    while time.monotonic() < deadline:
        draining = subprocess.run(health, capture_output=True, text=True, timeout=30, check=False)
        if draining.stdout.strip() == "NOT_SERVING":
            break
        time.sleep(0.1)
    assert draining is not None
    assert (draining.returncode, draining.stdout.strip()) == (1, "NOT_SERVING"), draining.stderr
    assert served.proc.wait(30) == 0
    gone = subprocess.run(health, capture_output=True, text=True, timeout=30, check=False)
    assert gone.returncode == 1
    assert "UNAVAILABLE" in gone.stderr


def test_health_speaks_tls_and_the_plaintext_health_port(tmp_path: Path) -> None:
    """Under TLS, `health` checks the gRPC port with the CLI's TLS options (flags or
    ROUTEIQ_TLS_*), and the probes' plaintext tls.health_port without them."""
    ca = trustme.CA()
    leaf = ca.issue_cert("routeiq-router.test")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    health_port = free_port()
    svc = ServiceProcess(
        env={
            "ROUTEIQ_TLS__CERT_FILE": str(tmp_path / "server.pem"),
            "ROUTEIQ_TLS__KEY_FILE": str(tmp_path / "server.key"),
            "ROUTEIQ_TLS__HEALTH_PORT": str(health_port),
        }
    )
    try:
        wait_serving(f"127.0.0.1:{health_port}", svc.proc, timeout_s=30)
        cli = [sys.executable, "-m", "router_service", "health", "--timeout", "3"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_")}

        def health(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*cli, *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env={**env, **extra},
                cwd=REPO,
            )

        tls = ("--ca", str(tmp_path / "ca.pem"), "--server-name", "routeiq-router.test")
        ok = health("--target", svc.target, *tls)
        assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING"), ok.stderr
        from_env = health(
            "--target",
            svc.target,
            ROUTEIQ_TLS_CA=str(tmp_path / "ca.pem"),
            ROUTEIQ_TLS_SERVER_NAME="routeiq-router.test",
        )
        assert (from_env.returncode, from_env.stdout.strip()) == (0, "SERVING"), from_env.stderr
        plaintext = health("--target", svc.target)
        assert plaintext.returncode == 1 and plaintext.stdout == ""
        probe = health("--target", f"127.0.0.1:{health_port}")
        assert (probe.returncode, probe.stdout.strip()) == (0, "SERVING"), probe.stderr
    finally:
        assert svc.stop() == 0
