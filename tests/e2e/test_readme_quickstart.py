"""The README's quickstart, run as written: the bundles that `make run` trains (from the data
shipped in the project), the service as `make run` starts it, then every command of the
quickstart's second block, each checked against the output the README shows after it. Only
the address differs: the service listens on a free port, which the CLI learns from
``ROUTEIQ_TARGET`` and grpcurl from its argument."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import REPO, ServiceProcess, tool

pytestmark = pytest.mark.e2e

README_ADDRESS = "127.0.0.1:50051"


def quickstart() -> list[tuple[str, str | None]]:
    """(command, the README's comment on the line after it) for each command of the block."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)```", section, re.S)[1]
    joined = block.replace("\\\n", " ")
    out: list[tuple[str, str | None]] = []
    for line in joined.splitlines():
        if line.startswith("# ") and out and out[-1][1] is None:
            out[-1] = (out[-1][0], line[2:])
        elif line.strip() and not line.startswith("#"):
            out.append((line.strip(), None))
    return out


@pytest.fixture(scope="module")
def service(default_bundle: Path, tier_bundle: Path) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(["--bundle", str(default_bundle), "--bundle", str(tier_bundle)])
    svc.wait_ready(60)
    yield svc
    assert svc.stop() == 0


def run(command: str, target: str) -> str:
    argv = shlex.split(command.replace(README_ADDRESS, target))
    if argv[0] == ".tools/bin/grpcurl":
        argv[0] = tool("grpcurl")
    env = {**os.environ, "ROUTEIQ_TARGET": target}
    done = subprocess.run(
        argv, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def test_the_quickstart_block_is_what_this_test_runs() -> None:
    commands = [c for c, _ in quickstart()]
    assert len(commands) == 7
    assert sum(c.startswith(".venv/bin/routeiq-router route") for c in commands) == 4
    assert all(Path(REPO / shlex.split(c)[0]).parent.name == "bin" for c in commands)


def test_the_quickstart_prints_what_the_readme_says(service: ServiceProcess) -> None:
    for command, shown in quickstart():
        out = run(command, service.target)
        if "routeiq-router route" in command:
            assert shown is not None, command
            want_model, want_source = re.match(r"(\S+)  \((\w+): ", shown).groups()  # type: ignore[union-attr]
            got = re.match(r"(\S+)  \((\w+): router (\S+)@", out)
            assert got is not None, out
            model, source, router = got.groups()
            candidates = shlex.split(command)[shlex.split(command).index("--candidates") + 1]
            names = [c.split(":")[0] for c in candidates.split(",")]
            assert (source, model in names) == (want_source, True), out
            if want_source == "MODEL":  # learned routers trained on the LLMRouter data
                want_router = re.search(r"router (\S+)@", shown).group(1)  # type: ignore[union-attr]
                assert router == want_router and model == want_model, out
        elif command.endswith(" list"):
            assert "routeiq.router.v1.Router" in out.split() and "grpc.health.v1.Health" in out
        elif command.endswith("Router/Route"):
            assert '"model": "a"' in out or '"model": "b"' in out, out
            assert '"source": "STATIC"' in out
        else:
            assert '"status": "SERVING"' in out, out
