"""The ``routeiq.router.v1.Router`` service: convert, delegate to the engine, convert back."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import grpc

from router_service.bundles.base import LoadedRouter
from router_service.domain import Outcome, RouteInput
from router_service.engine.engine import DecisionEngine
from router_service.engine.validate import validate_outcome
from router_service.proto import pb, pb_grpc
from router_service.security.auth import CALLER
from router_service.security.ratelimit import RateLimiter
from router_service.surfaces.codec import decision_to_pb, outcome_from_pb, route_from_pb
from router_service.surfaces.status import grpc_errors
from router_service.telemetry.outcomes import OutcomeSink

__all__ = ["RouterServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]


class RouterServicer(pb_grpc.RouterServicer):
    def __init__(
        self, engine: DecisionEngine, outcomes: OutcomeSink, limiter: RateLimiter | None = None
    ) -> None:
        self._engine = engine
        self._outcomes = outcomes
        self._limiter = limiter

    def _scoped(self, req: RouteInput) -> RouteInput:
        """With auth on: the caller's tenant as the ``tenant`` label (whatever the request
        said), and PermissionDenied for a router its token does not allow."""
        caller = CALLER.get()
        if caller is None:
            return req
        caller.check_router(req.router or self._engine.table.default)
        return dataclasses.replace(req, labels=caller.scoped(req.labels))

    def _admit(self, reqs: list[RouteInput]) -> None:
        """Take each tenant's requests from its rate-limit bucket (RateLimited when empty)."""
        if self._limiter is None:
            return
        counts = Counter(r.tenant for r in reqs)
        for tenant, n in counts.items():
            self._limiter.take(tenant, n)

    @grpc_errors
    async def Route(self, request: pb.RouteRequest, context: Ctx) -> pb.RouteResponse:
        req = self._scoped(route_from_pb(request))
        self._admit([req])
        return decision_to_pb(await self._engine.route(req))

    @grpc_errors
    async def RouteBatch(
        self, request: pb.RouteBatchRequest, context: Ctx
    ) -> pb.RouteBatchResponse:
        reqs = [self._scoped(route_from_pb(r)) for r in request.requests]
        self._admit(reqs)
        decisions = await self._engine.route_batch(reqs)
        return pb.RouteBatchResponse(responses=[decision_to_pb(d) for d in decisions])

    @grpc_errors
    async def ListRouters(
        self, request: pb.ListRoutersRequest, context: Ctx
    ) -> pb.ListRoutersResponse:
        table = self._engine.table
        caller = CALLER.get()
        infos = []
        for r in sorted(table.routers.values(), key=lambda r: r.name):
            if caller is not None and not caller.may_use(r.name):
                continue
            info = _router_info(r)
            info.is_default = r.name == table.default
            rollout = table.rollouts.get(r.name)
            if rollout is not None:
                info.rollout.CopyFrom(
                    pb.Rollout(
                        mode=pb.Rollout.SHADOW if rollout.shadow else pb.Rollout.CANARY,
                        share=0.0 if rollout.shadow else rollout.share,
                        assign_by=rollout.assign_by,
                        challenger=_router_info(rollout.challenger),
                        description=rollout.description,
                    )
                )
            infos.append(info)
        return pb.ListRoutersResponse(default_router=table.default, routers=infos)

    @grpc_errors
    async def ReportOutcome(
        self, request: pb.ReportOutcomeRequest, context: Ctx
    ) -> pb.ReportOutcomeResponse:
        outcome: Outcome = outcome_from_pb(request)
        caller = CALLER.get()
        if caller is not None:  # a report changes model health for the caller's tenant only
            outcome = dataclasses.replace(outcome, labels=caller.scoped(outcome.labels))
        validate_outcome(outcome, self._engine.limits)
        self._outcomes.submit(outcome)
        self._engine.record_outcome(outcome)
        return pb.ReportOutcomeResponse()


def _router_info(r: LoadedRouter) -> pb.RouterInfo:
    info = pb.RouterInfo(
        name=r.name,
        kind=r.kind,
        version=r.version,
        models=list(r.models),
        aliases=dict(r.aliases),
        sha256=r.sha256,
    )
    b = r.info
    if b is not None:
        info.origin = b.origin
        info.bundle_version = b.bundle_version
        info.signed_by = b.signed_by
        info.trained_at = b.trained_at
        if b.held_out_quality is not None:
            info.held_out_quality = b.held_out_quality
        if b.held_out_cost is not None:
            info.held_out_cost = b.held_out_cost
    return info
