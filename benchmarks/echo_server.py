"""The raw gRPC ceiling: ``routeiq.router.v1.Router`` answering a constant decision.

Built exactly like the service, by the same code (:func:`router_service.grpc_server.build_server`
over the default settings): ``grpc.aio`` on uvloop, the same channel options and
``maximum_concurrent_rpcs``, the standard health service and reflection. ``Route`` converts the
request from the wire and answers one precomputed ``RouteResponse`` naming the first candidate
(so the same ghz call works against both servers); ``RouteBatch`` answers one per request.
Whatever the service spends beyond this server is the cost of deciding.

    python benchmarks/echo_server.py --port 50099 [--host 127.0.0.1] [--event-loop asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from router_service.config import ServerSettings
from router_service.grpc_server import build_server
from router_service.proto import SERVICE_NAME, pb, pb_grpc

log = logging.getLogger("echo_server")
Ctx = grpc.aio.ServicerContext[Any, Any]


def _answer(model: str) -> pb.RouteResponse:
    return pb.RouteResponse(
        model=model,
        scores=[pb.CandidateScore(model=model, score=1.0)],
        router="echo",
        router_version="0",
        source=pb.STATIC,
        reason="echo",
    )


class EchoRouter(pb_grpc.RouterServicer):
    """Constant answers; only the first candidate's name is read from the request."""

    def __init__(self) -> None:
        self._answers: dict[str, pb.RouteResponse] = {}

    def _for(self, request: pb.RouteRequest) -> pb.RouteResponse:
        model = request.candidates[0].name if request.candidates else ""
        answer = self._answers.get(model)
        if answer is None:
            answer = self._answers.setdefault(model, _answer(model))
        return answer

    async def Route(self, request: pb.RouteRequest, context: Ctx) -> pb.RouteResponse:
        return self._for(request)

    async def RouteBatch(
        self, request: pb.RouteBatchRequest, context: Ctx
    ) -> pb.RouteBatchResponse:
        return pb.RouteBatchResponse(responses=[self._for(r) for r in request.requests])

    async def ReportOutcome(
        self, request: pb.ReportOutcomeRequest, context: Ctx
    ) -> pb.ReportOutcomeResponse:
        return pb.ReportOutcomeResponse()

    async def ListRouters(
        self, request: pb.ListRoutersRequest, context: Ctx
    ) -> pb.ListRoutersResponse:
        info = pb.RouterInfo(name="echo", kind="echo", version="0", is_default=True)
        return pb.ListRoutersResponse(routers=[info], default_router="echo")


async def serve(cfg: ServerSettings) -> None:
    health_servicer = health.aio.HealthServicer()
    echo = functools.partial(pb_grpc.add_RouterServicer_to_server, EchoRouter())
    server, port = build_server(cfg, [(SERVICE_NAME, echo)], health_servicer, port=cfg.port)
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("echo server on %s:%d (%s)", cfg.host, port, cfg.event_loop)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(cfg.grace_period_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = ServerSettings(host=args.host, port=args.port, event_loop=args.event_loop)
    if cfg.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(cfg))
    else:
        asyncio.run(serve(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
