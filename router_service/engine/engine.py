"""The decision engine.

One pass per request: validate → decision cache → features → strategy → store → answer.
Anything that fails after validation degrades to the fallback strategy (``Source.FALLBACK``)
and the answer says why; only bad input (:class:`InvalidRequest`) and a service that is not
ready (:class:`NotReady`) fail the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import TypeVar, cast

import numpy as np

from router_service.bundles.base import LoadedRouter, RouterTable
from router_service.cache.base import DecisionCache, FeatureCache, NoCache
from router_service.cache.keys import decision_key, feature_key, input_digest
from router_service.config import LimitsSettings
from router_service.engine.batcher import InferenceBatcher
from router_service.engine.health import ModelHealth
from router_service.engine.types import Choice, Decision, Outcome, RouteInput, Source
from router_service.engine.validate import validate_route
from router_service.errors import InvalidRequest, NotReady, StrategyError, UnknownRouter
from router_service.metrics import Metrics
from router_service.strategies.base import Features, ScoredStrategy, Strategy

__all__ = ["DecisionEngine"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_WARN_EVERY_S = 10.0


class _Degraded(Exception):
    """A learned router could not answer; the message is a short, prompt-free reason."""


class DecisionEngine:
    """Answers :class:`RouteInput` with a :class:`Decision`; knows nothing about gRPC.

    ``executor`` runs featurizers, learned routers and blocking strategies off the event loop
    (``None`` = inline); ``offload_timeout_s`` bounds them (``router_timeouts_s``: per router
    name), past it the answer comes from ``fallback``. Learned-router inference is
    micro-batched per router (see :mod:`router_service.engine.batcher`): up to ``max_batch``
    requests per job, at most ``max_running`` jobs per router at once; jobs of routers whose
    recent jobs took less than ``inline_below_us`` run on the event loop (0 = always in the
    executor).
    """

    def __init__(
        self,
        limits: LimitsSettings,
        fallback: Strategy,
        health: ModelHealth,
        *,
        cache: DecisionCache | None = None,
        feature_cache: FeatureCache | None = None,
        executor: Executor | None = None,
        offload_timeout_s: float = 0.05,
        router_timeouts_s: Mapping[str, float] | None = None,
        metrics: Metrics | None = None,
        max_batch: int = 32,
        max_running: int = 1,
        inline_below_us: float = 0.0,
    ) -> None:
        self._limits = limits
        self._fallback = fallback
        self._health = health
        self._cache: DecisionCache = cache or NoCache()
        self._feature_cache: FeatureCache = feature_cache or NoCache()
        self._executor = executor
        self._offload_timeout_s = offload_timeout_s
        self._router_timeouts_s = dict(router_timeouts_s or {})
        self._table: RouterTable | None = None
        self._metrics = metrics
        self._warned: dict[tuple[str, str], tuple[float, int]] = {}
        self._max_batch = max_batch
        self._max_running = max_running
        self._inline_below_us = inline_below_us
        self._batchers: dict[str, tuple[LoadedRouter, InferenceBatcher]] = {}

    # -- router table ---------------------------------------------------------------------
    def install(self, table: RouterTable) -> None:
        """Swap in a new router table atomically; requests in flight keep the old one."""
        if table.default not in table.routers:
            raise ValueError(f"default router {table.default!r} is not in the table")
        self._table = table
        self._batchers = {}

    @property
    def ready(self) -> bool:
        return self._table is not None

    @property
    def table(self) -> RouterTable:
        if self._table is None:
            raise NotReady("routers are not loaded yet")
        return self._table

    def resolve(self, name: str) -> LoadedRouter:
        table = self.table
        router = table.routers.get(name or table.default)
        if router is None:
            raise UnknownRouter(
                f"unknown router {name!r}; loaded: {', '.join(sorted(table.routers))}"
            )
        return router

    # -- decisions ------------------------------------------------------------------------
    async def route(self, req: RouteInput) -> Decision:
        """Decide for one request. Raises InvalidRequest/UnknownRouter/NotReady only."""
        start = time.perf_counter_ns()
        router = self.resolve(req.router)
        validate_route(req, self._limits)
        self._check_input_kind(router, req)
        return self._observe(await self._decide(router, req, start))

    async def route_batch(self, reqs: Sequence[RouteInput]) -> list[Decision]:
        """Decide for many requests, answered in order. All are validated before any is routed;
        the first invalid one fails the batch with its index in the message."""
        start = time.perf_counter_ns()
        if len(reqs) > self._limits.max_batch:
            raise InvalidRequest(
                f"{len(reqs)} requests, over the limit of {self._limits.max_batch}"
            )
        routers = []
        for i, req in enumerate(reqs):
            try:
                router = self.resolve(req.router)
                validate_route(req, self._limits)
                self._check_input_kind(router, req)
            except InvalidRequest as exc:
                raise type(exc)(f"requests[{i}]: {exc}") from None
            routers.append(router)
        decisions = await asyncio.gather(
            *(self._decide(r, q, start) for r, q in zip(routers, reqs, strict=True))
        )
        return [self._observe(d) for d in decisions]

    def record_outcome(self, outcome: Outcome) -> None:
        if outcome.failed:
            self._health.mark_failed(outcome.model)
        else:
            self._health.mark_ok(outcome.model)

    # -- internals ------------------------------------------------------------------------
    def _observe(self, decision: Decision) -> Decision:
        if self._metrics is not None:
            self._metrics.observe_decision(
                decision.router, decision.source.name, decision.latency_us / 1e6
            )
        return decision

    @staticmethod
    def _check_input_kind(router: LoadedRouter, req: RouteInput) -> None:
        featurizer = router.featurizer
        if featurizer is None or not router.strategy.needs_features:
            return
        wants_vector = featurizer.name == "embedding"
        if wants_vector and req.embedding is None:
            raise InvalidRequest(f"router {router.name!r} needs an 'embedding' input")
        if wants_vector and req.embedding is not None and len(req.embedding) != featurizer.dim:
            raise InvalidRequest(
                f"router {router.name!r} needs an embedding of {featurizer.dim} values, "
                f"got {len(req.embedding)}"
            )
        if not wants_vector and req.embedding is not None:
            raise InvalidRequest(
                f"router {router.name!r} needs text ('prompt' or 'messages'), got an embedding"
            )

    async def _decide(self, router: LoadedRouter, req: RouteInput, start: int) -> Decision:
        strategy = router.strategy
        learned = strategy.needs_features
        digest = key = ""
        if learned:
            digest = input_digest(req)
            key = decision_key(router.sha256, req, digest)
            cached = await self._cache.get_decision(key)
            if cached is not None:
                return dataclasses.replace(
                    cached,
                    request_id=req.request_id,
                    source=Source.CACHE,
                    latency_us=_since(start),
                )
        try:
            if learned:
                choice = await self._choose_learned(router, req, digest)
            elif getattr(strategy, "blocking", False):
                choice = await self._offload(
                    functools.partial(strategy.choose, req, None, self._health),
                    f"strategy {strategy.kind}",
                    router.name,
                )
            else:
                choice = strategy.choose(req, None, self._health)
            self._check_choice(req, choice)
        except Exception as exc:  # degrade, never fail, once the input is valid
            return self._degrade(router, req, exc, start)
        decision = Decision(
            request_id=req.request_id,
            model=choice.model,
            scores=choice.scores,
            router=router.name,
            router_version=router.version,
            source=Source.MODEL if learned else Source.STATIC,
            reason=choice.reason,
            latency_us=_since(start),
        )
        if learned:
            decision = self._cache.put_decision(key, decision)  # the answer reuses its encoding
        return decision

    async def _choose_learned(self, router: LoadedRouter, req: RouteInput, digest: str) -> Choice:
        """Features (feature cache, or the client's vector, or the featurizer) and the router's
        prediction in one micro-batched job (in the pool, or on the loop while such jobs are
        fast); then the policy, on the loop."""
        strategy = router.strategy
        featurizer = router.featurizer
        features: Features | None = None
        fkey = ""
        what = f"router {router.name}"
        if req.embedding is not None:
            features = np.asarray(req.embedding, dtype=np.float32).reshape(1, -1)
        elif featurizer is None:
            raise _Degraded(f"router {router.name!r} has no featurizer")
        else:
            fkey = feature_key(featurizer.sha256, req, digest)
            features = await self._feature_cache.get_features(fkey)
            if features is None:
                what = f"featurizer {featurizer.name}"
        text = req.text() if features is None else None
        job = self._batcher(router).infer(text, features)
        inference = await self._bounded(job, what, router.name)
        if features is None:
            self._feature_cache.put_features(fkey, inference.features)
        if inference.quality is not None:
            scored = cast(ScoredStrategy, strategy)
            return scored.choose_scored(req, inference.quality, self._health)
        if getattr(strategy, "blocking", False):
            return await self._offload(
                functools.partial(strategy.choose, req, inference.features, self._health),
                f"strategy {strategy.kind}",
                router.name,
            )
        return strategy.choose(req, inference.features, self._health)

    def _batcher(self, router: LoadedRouter) -> InferenceBatcher:
        known = self._batchers.get(router.name)
        if known is not None and known[0] is router:
            return known[1]
        strategy = router.strategy
        batcher = InferenceBatcher(
            router.featurizer,
            strategy.predict_batch if isinstance(strategy, ScoredStrategy) else None,
            self._executor,
            max_batch=self._max_batch,
            max_running=self._max_running,
            inline_below_us=self._inline_below_us,
            on_batch=None
            if self._metrics is None
            else functools.partial(self._metrics.observe_batch, router.name),
        )
        self._batchers[router.name] = (router, batcher)
        return batcher

    async def _bounded(self, job: Awaitable[_T], what: str, router: str) -> _T:
        """Await ``job`` under ``router``'s offload timeout (no bound without an executor)."""
        if self._executor is None:
            return await job
        timeout_s = self._router_timeouts_s.get(router, self._offload_timeout_s)
        try:
            return await asyncio.wait_for(job, timeout_s)
        except TimeoutError:
            raise _Degraded(f"{what} over {timeout_s * 1000:.0f} ms") from None

    async def _offload(self, call: Callable[[], _T], what: str, router: str) -> _T:
        """Run ``call`` in the executor (inline without one) under the offload timeout."""
        if self._executor is None:
            return call()
        return await self._bounded(
            asyncio.get_running_loop().run_in_executor(self._executor, call), what, router
        )

    @staticmethod
    def _check_choice(req: RouteInput, choice: Choice) -> None:
        if all(c.name != choice.model for c in req.candidates):
            raise _Degraded(f"strategy chose {choice.model!r}, not a candidate")

    def _warn_degraded(self, router: str, request_id: str, why: str) -> None:
        """One warning per router and reason every ``_WARN_EVERY_S`` (with how many were held
        back), so that an overloaded featurizer does not also flood the log."""
        now = time.monotonic()
        last, held = self._warned.get((router, why), (-_WARN_EVERY_S, 0))
        if now - last < _WARN_EVERY_S:
            self._warned[(router, why)] = (last, held + 1)
            return
        if len(self._warned) > 1000:  # reasons are few; this only bounds a pathological case
            self._warned.clear()
        self._warned[(router, why)] = (now, 0)
        log.warning(
            "router %s degraded to fallback for request %s: %s (%d more since the last warning)",
            router,
            request_id or "-",
            why,
            held,
        )

    def _degrade(
        self, router: LoadedRouter, req: RouteInput, exc: Exception, start: int
    ) -> Decision:
        why = str(exc) if isinstance(exc, _Degraded | StrategyError) else type(exc).__name__
        self._warn_degraded(router.name, req.request_id, why)
        choice = self._fallback.choose(req, None, self._health)
        return Decision(
            request_id=req.request_id,
            model=choice.model,
            scores=choice.scores,
            router=router.name,
            router_version=router.version,
            source=Source.FALLBACK,
            reason=f"{router.name} failed ({why}); fallback: {choice.reason}",
            latency_us=_since(start),
        )


def _since(start_ns: int) -> int:
    return (time.perf_counter_ns() - start_ns) // 1000
