"""The ``routeiq.router.v1.Router`` service: convert, delegate to the engine, convert back."""

from __future__ import annotations

from typing import Any

import grpc

from router_service.engine.engine import DecisionEngine
from router_service.engine.validate import validate_outcome
from router_service.proto import pb, pb_grpc
from router_service.surfaces.codec import decision_to_pb, outcome_from_pb, route_from_pb
from router_service.surfaces.status import grpc_errors
from router_service.telemetry.outcomes import OutcomeSink

__all__ = ["RouterServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


class RouterServicer(pb_grpc.RouterServicer):
    def __init__(self, engine: DecisionEngine, outcomes: OutcomeSink) -> None:
        self._engine = engine
        self._outcomes = outcomes

    @grpc_errors
    async def Route(self, request: pb.RouteRequest, context: Ctx) -> pb.RouteResponse:
        return decision_to_pb(await self._engine.route(route_from_pb(request)))

    @grpc_errors
    async def RouteBatch(
        self, request: pb.RouteBatchRequest, context: Ctx
    ) -> pb.RouteBatchResponse:
        decisions = await self._engine.route_batch([route_from_pb(r) for r in request.requests])
        return pb.RouteBatchResponse(responses=[decision_to_pb(d) for d in decisions])

    @grpc_errors
    async def ListRouters(
        self, request: pb.ListRoutersRequest, context: Ctx
    ) -> pb.ListRoutersResponse:
        table = self._engine.table
        return pb.ListRoutersResponse(
            default_router=table.default,
            routers=[
                pb.RouterInfo(
                    name=r.name,
                    kind=r.kind,
                    version=r.version,
                    is_default=r.name == table.default,
                    models=list(r.models),
                    aliases=dict(r.aliases),
                )
                for r in sorted(table.routers.values(), key=lambda r: r.name)
            ],
        )

    @grpc_errors
    async def ReportOutcome(
        self, request: pb.ReportOutcomeRequest, context: Ctx
    ) -> pb.ReportOutcomeResponse:
        outcome = outcome_from_pb(request)
        validate_outcome(outcome, self._engine.limits)
        self._outcomes.submit(outcome)
        self._engine.record_outcome(outcome)
        return pb.ReportOutcomeResponse()
