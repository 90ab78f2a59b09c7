"""Process-level running: event loop choice, logging, and one process per core.

With ``server.workers > 1`` the parent starts that many worker processes (spawned, not forked:
gRPC does not survive fork) that bind the same port with SO_REUSEPORT; the kernel spreads
connections over them. The parent forwards SIGTERM/SIGINT and waits for every worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router_service import logs
from router_service.config import Settings
from router_service.errors import ConfigError
from router_service.server import serve

__all__ = ["run"]

log = logging.getLogger(__name__)


def _configure_logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)


def _run_loop(settings: Settings, on_ready: Callable[[int], None] | None) -> None:
    if settings.server.event_loop == "uvloop":
        import uvloop  # noqa: PLC0415 - optional fast loop, only when configured

        uvloop.run(serve(settings, on_ready))
    else:
        asyncio.run(serve(settings, on_ready))


def _worker(settings_json: str) -> None:
    settings = Settings.model_validate_json(settings_json)
    _configure_logging(settings)
    _run_loop(settings, None)


def _for_worker(settings: Settings, index: int) -> str:
    """Worker ``index``'s settings as JSON: its metrics endpoint is ``metrics.port + index``,
    and each file it appends to (decision events, outcome reports, shadow decisions) gets
    ``-INDEX`` before its suffix: every file has one writer (which also rotates it)."""

    def own(path: Path) -> Path:
        return path.with_name(f"{path.stem}-{index}{path.suffix}")

    telemetry = settings.telemetry
    events = telemetry.events.model_copy(update={"path": own(Path(telemetry.events.path))})
    update: dict[str, object] = {
        "telemetry": telemetry.model_copy(
            update={
                "events": events,
                "outcomes_path": own(Path(telemetry.outcomes_path)),
                "shadow_path": own(Path(telemetry.shadow_path)),
            }
        )
    }
    port = settings.metrics.port
    if port is not None and port != 0:
        update["metrics"] = settings.metrics.model_copy(update={"port": port + index})
    return settings.model_copy(update=update).model_dump_json()


def run(settings: Settings, on_ready: Callable[[int], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    _configure_logging(settings)
    if settings.server.workers == 1:
        _run_loop(settings, on_ready)
        return 0
    if settings.server.port == 0:
        raise ConfigError("server.workers > 1 needs a fixed server.port (not 0)")
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(_for_worker(settings, i),), name=f"worker-{i}")
        for i in range(settings.server.workers)
    ]
    for proc in procs:
        proc.start()
    log.info("started %d workers on port %d", len(procs), settings.server.port)

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                proc.terminate() if signum == signal.SIGTERM else _interrupt(proc.pid)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return max((abs(p.exitcode or 0) for p in procs), default=0) and 1


def _interrupt(pid: int) -> None:
    os.kill(pid, signal.SIGINT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the routeiq-router command")
