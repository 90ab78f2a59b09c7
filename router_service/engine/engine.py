"""The decision engine.

One pass per request: validate → prediction cache → features (feature cache, else the
featurizer) → the router's prediction → policy → answer. Anything that fails after validation
degrades to the fallback strategy (``Source.FALLBACK``) and the answer says why; only bad input
(:class:`InvalidRequest`) and a service that is not ready (:class:`NotReady`) fail the call.

What the cache keeps is the router's prediction for an input (quality per model) and the
featurizer's row, never a decision: policy, candidates (their order, prices and
``unavailable``) and model health are applied to every request, cached or not, so a cached
answer is exactly what a fresh one would be (``Source.CACHE`` says the prediction, or for a
strategy without one the features, came from the cache). Entries are scoped by tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from opentelemetry.trace import get_current_span

from router_service.bundles.base import LoadedRouter, RouterTable
from router_service.cache.base import ArrayCache, NoCache
from router_service.cache.codec import FEATURES, PREDICTIONS, Array
from router_service.cache.keys import feature_key, prediction_key, text_digest, vector_digest
from router_service.config import BudgetSettings, LimitsSettings
from router_service.domain import Choice, Decision, Outcome, RouteInput, Source
from router_service.engine.batcher import InferenceBatcher, Overloaded
from router_service.engine.budgets import BudgetController
from router_service.engine.health import ModelHealth
from router_service.engine.validate import validate_route
from router_service.errors import InvalidRequest, NotReady, StrategyError, UnknownRouter
from router_service.metrics import Metrics
from router_service.strategies.base import Features, HealthCheck, ScoredStrategy, Strategy

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["DecisionEngine"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()
_WARN_EVERY_S = 10.0
_MAX_TENANTS = 1000  # budget controllers per engine; later tenants share one


class _Degraded(Exception):
    """A learned router could not answer; the message is a short, prompt-free reason and
    ``kind`` its class for metrics (``routeiq_fallbacks_total{reason}``)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What the engine derives once per loaded learned router."""

    router: LoadedRouter
    batcher: InferenceBatcher
    scored: ScoredStrategy | None
    models: frozenset[str]
    budget_s: float | None
    """The router's time budget (:meth:`DecisionEngine.budget_s`); None without an executor."""


class DecisionEngine:
    """Answers :class:`RouteInput` with a :class:`Decision`; knows nothing about gRPC.

    ``executor`` runs featurizers, learned routers and blocking strategies off the event loop
    (``None`` = inline) within each router's :meth:`budget_s` (``offload_timeout_s``;
    ``router_timeouts_s`` per router name; or sized from the bundle's measured featurizer cost),
    past which the answer comes from ``fallback``. Learned-router inference is
    micro-batched per router (see :mod:`router_service.engine.batcher`): up to ``max_batch``
    requests per job, at most ``max_running`` jobs per router at once; jobs of routers whose
    recent jobs took less than ``inline_below_us`` run on the event loop (0 = always in the
    executor). A router with a rollout (see :class:`RolloutPlan`) answers from its canary
    challenger for the requests in its share; a shadow challenger decides in the background and
    its decision goes to ``on_shadow`` with the answer's, never to the caller. Every answered
    decision goes to ``on_decision`` (with the side that answered), which must not block.
    """

    def __init__(
        self,
        limits: LimitsSettings,
        fallback: Strategy,
        health: ModelHealth,
        *,
        cache: ArrayCache | None = None,
        executor: Executor | None = None,
        offload_timeout_s: float = 0.05,
        router_timeouts_s: Mapping[str, float] | None = None,
        metrics: Metrics | None = None,
        max_batch: int = 32,
        max_batch_chars: int = 16_384,
        max_running: int = 1,
        inline_below_us: float = 0.0,
        on_shadow: Callable[[RouteInput, Decision, Decision], None] | None = None,
        on_decision: Callable[[RouteInput, Decision, str], None] | None = None,
        budgets: Sequence[BudgetSettings] = (),
        exploration: Mapping[str, float] | None = None,
        shadow_budget_s: float = 0.05,
        shadow_max_in_flight: int = 64,
        tracer: Tracer | None = None,
    ) -> None:
        self._limits = limits
        self._fallback = fallback
        self._health = health
        self._cache: ArrayCache = cache or NoCache()
        self._executor = executor
        self._offload_timeout_s = offload_timeout_s
        self._router_timeouts_s = dict(router_timeouts_s or {})
        self._table: RouterTable | None = None
        self._metrics = metrics
        self._warned: dict[tuple[str, str], tuple[float, int]] = {}
        self._max_batch = max_batch
        self._max_batch_chars = max_batch_chars
        self._max_running = max_running
        self._inline_below_us = inline_below_us
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._on_shadow = on_shadow
        self._on_decision = on_decision
        self._budgets: dict[str, list[BudgetSettings]] = {}
        for spec in budgets:
            self._budgets.setdefault(spec.router, []).append(spec)
        self._controllers: dict[tuple[str, str], BudgetController] = {}
        self._exploration = dict(exploration or {})
        self._random = random.Random()  # noqa: S311 (exploration, not security)
        self._shadow_budget_s = shadow_budget_s
        self._shadow_max_in_flight = shadow_max_in_flight
        self._shadows: set[asyncio.Task[None]] = set()
        self._tracer = tracer
        # chosen once: with tracing off a decision takes no span code path, not even a check
        self._decide: Callable[[LoadedRouter, RouteInput, int], Awaitable[Decision]] = (
            self._decide_now if tracer is None else self._decide_traced
        )

    # -- router table ---------------------------------------------------------------------
    def install(self, table: RouterTable) -> None:
        """Swap in a new router table atomically; requests in flight keep the old one (and
        their routers' batchers). Plans of routers that did not change are kept."""
        if table.default not in table.routers:
            raise ValueError(f"default router {table.default!r} is not in the table")
        old = self._table
        live = [*table.routers.values(), *(p.challenger for p in table.rollouts.values())]
        self._table = table
        self._plans = {
            key: plan
            for key, plan in self._plans.items()
            if any(plan.router is router for router in live)
        }
        before = {} if old is None else old.routers
        for router in table.routers.values():
            budget = self.budget_s(router)
            if budget != self._offload_timeout_s and before.get(router.name) is not router:
                log.info("router %s: time budget %.0f ms", router.name, budget * 1000)

    def budget_s(self, router: LoadedRouter) -> float:
        """How long a request may wait for ``router``'s featurizer, model or blocking strategy
        (queueing included) before the fallback answers: ``engine.router_timeouts_ms`` when
        set for it; else, when its bundle measured its featurizer, long enough for one full
        micro-batch of that featurizer (``max_batch`` × its p99 per prompt) and never less than
        ``engine.offload_timeout_ms``; else ``engine.offload_timeout_ms``."""
        configured = self._router_timeouts_s.get(router.name)
        if configured is not None:
            return configured
        cost_ms = router.featurizer_cost_ms
        if cost_ms:
            return max(self._offload_timeout_s, cost_ms * self._max_batch / 1000)
        return self._offload_timeout_s

    @property
    def limits(self) -> LimitsSettings:
        return self._limits

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

    def _sides(self, req: RouteInput) -> tuple[LoadedRouter, LoadedRouter | None]:
        """The router that answers ``req`` (the champion, or a canary challenger whose share
        the request falls in), and a shadow challenger that decides beside it, if any."""
        router = self.resolve(req.router)
        rollout = self.table.rollouts.get(router.name)
        if rollout is None:
            return router, None
        if rollout.shadow:
            return router, rollout.challenger
        return (rollout.challenger if rollout.takes(router.name, req) else router), None

    # -- decisions ------------------------------------------------------------------------
    async def route(self, req: RouteInput) -> Decision:
        """Decide for one request. Raises InvalidRequest/UnknownRouter/NotReady only."""
        start = time.perf_counter_ns()
        router, shadow = self._sides(req)
        validate_route(req, self._limits)
        self._check_input_kind(router, req)
        budget = self._budget(router.name, req.tenant) if self._budgets else None
        if budget is not None:
            req = _with_lambda(req, budget)
        decision = await self._decide(router, req, start)
        if budget is not None:
            decision = self._held(budget, req, decision)
        if self._exploration:
            decision = self._explored(req, decision)
        if shadow is not None:
            self._shadow(shadow, req, decision)
        if self._on_decision is not None:
            self._on_decision(req, decision, self._side(router))
        return self._observe(decision)

    async def route_batch(self, reqs: Sequence[RouteInput]) -> list[Decision]:
        """Decide for many requests, answered in order. All are validated before any is routed;
        the first invalid one fails the batch with its index in the message."""
        start = time.perf_counter_ns()
        if len(reqs) > self._limits.max_batch:
            raise InvalidRequest(
                f"{len(reqs)} requests, over the limit of {self._limits.max_batch}"
            )
        sides = []
        for i, req in enumerate(reqs):
            try:
                router, shadow = self._sides(req)
                validate_route(req, self._limits)
                self._check_input_kind(router, req)
            except InvalidRequest as exc:
                raise type(exc)(f"requests[{i}]: {exc}") from None
            sides.append((router, shadow))
        budgets = [
            self._budget(r.name, q.tenant) if self._budgets else None
            for (r, _), q in zip(sides, reqs, strict=True)
        ]
        reqs = [q if b is None else _with_lambda(q, b) for q, b in zip(reqs, budgets, strict=True)]
        decisions = await asyncio.gather(
            *(self._decide(r, q, start) for (r, _), q in zip(sides, reqs, strict=True))
        )
        decisions = [
            d if b is None else self._held(b, q, d)
            for q, d, b in zip(reqs, decisions, budgets, strict=True)
        ]
        if self._exploration:
            decisions = [self._explored(q, d) for q, d in zip(reqs, decisions, strict=True)]
        for (router, shadow), req, decision in zip(sides, reqs, decisions, strict=True):
            if shadow is not None:
                self._shadow(shadow, req, decision)
            if self._on_decision is not None:
                self._on_decision(req, decision, self._side(router))
        return [self._observe(d) for d in decisions]

    def _budget(self, router: str, tenant: str) -> BudgetController | None:
        """The controller of the budget on ``router`` for ``tenant``, if there is one (made on
        first use; past ``_MAX_TENANTS`` controllers, further tenants share one)."""
        ctl = self._controllers.get((router, tenant))
        if ctl is not None:
            return ctl
        specs = self._budgets.get(router)
        if not specs:
            return None
        key = (router, tenant)
        spec = next((s for s in specs if s.tenant == tenant), None)
        if spec is None:  # the router's budget for every tenant, each on its own
            spec = next((s for s in specs if s.tenant is None), None)
            if spec is None:
                return None
            if len(self._controllers) >= _MAX_TENANTS:
                key = (router, "*")
                ctl = self._controllers.get(key)
                if ctl is not None:
                    return ctl
        ctl = self._controllers[key] = BudgetController(spec, self._limits.max_candidates)
        if self._metrics is not None:
            self._metrics.watch_budget(router, key[1], ctl)
        return ctl

    @staticmethod
    def _held(budget: BudgetController, req: RouteInput, decision: Decision) -> Decision:
        """Feed a learned decision to its budget; name the λ in force in its reason."""
        if decision.source not in (Source.MODEL, Source.CACHE):
            return decision
        settled = budget.lam is not None
        budget.observe(req, decision)
        if not settled:
            return decision
        lam = req.policy.cost_weight or 0.0
        note = f"; budget {budget.describe()}: λ {lam:.4g}"
        return dataclasses.replace(decision, reason=decision.reason + note)

    def _explored(self, req: RouteInput, decision: Decision) -> Decision:
        """With the router's exploration share, a learned decision picks uniformly among the
        usable candidates it scored instead; the decision carries its propensity either way."""
        share = self._exploration.get(decision.router)
        if share is None or decision.source not in (Source.MODEL, Source.CACHE):
            return decision
        health = self._health.view(req.tenant)
        scored = {s.model for s in decision.scores if math.isfinite(s.score)}
        pool = [
            c.name
            for c in req.candidates
            if c.name in scored and not c.unavailable and health(c.name)
        ]
        if len(pool) < 2 or decision.model not in pool:
            return decision
        model, note = decision.model, ""
        if self._random.random() < share:
            model = self._random.choice(pool)
            note = f"; explored: uniform over {len(pool)} candidates (share {share:g})"
        propensity = share / len(pool) + (1.0 - share) * (model == decision.model)
        return dataclasses.replace(
            decision, model=model, reason=decision.reason + note, propensity=propensity
        )

    def _side(self, router: LoadedRouter) -> str:
        """``champion``, or ``canary`` when a rollout's challenger answered."""
        return "champion" if self.table.routers.get(router.name) is router else "canary"

    def _shadow(self, challenger: LoadedRouter, req: RouteInput, answer: Decision) -> None:
        """Let a shadow challenger decide ``req`` in the background (never delaying the
        answer), within ``shadow_budget_s`` and ``shadow_max_in_flight``; its decision goes to
        ``on_shadow`` with the answer's."""
        if self._on_shadow is None:
            return
        if len(self._shadows) >= self._shadow_max_in_flight:
            self._count_shadow(challenger.name, "skipped")
            return
        task = asyncio.create_task(self._run_shadow(challenger, req, answer))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _run_shadow(
        self, challenger: LoadedRouter, req: RouteInput, answer: Decision
    ) -> None:
        assert self._on_shadow is not None
        try:
            self._check_input_kind(challenger, req)
            decision = await asyncio.wait_for(
                self._decide(challenger, req, time.perf_counter_ns()), self._shadow_budget_s
            )
        except (InvalidRequest, TimeoutError):
            self._count_shadow(challenger.name, "skipped")
            return
        self._count_shadow(
            challenger.name, "agree" if decision.model == answer.model else "disagree"
        )
        self._on_shadow(req, answer, decision)

    async def stop_shadows(self) -> None:
        """Cancel shadow decisions still running (at shutdown: nobody waits for them)."""
        tasks = list(self._shadows)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _count_shadow(self, router: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.count_shadow(router, result)

    def record_outcome(self, outcome: Outcome) -> None:
        """A failed call benches its model for the report's tenant (see
        :mod:`router_service.engine.health`); a success changes nothing."""
        if outcome.failed:
            self._health.mark_failed(outcome.tenant, outcome.model)

    # -- internals ------------------------------------------------------------------------
    def _observe(self, decision: Decision) -> Decision:
        if self._metrics is not None:
            self._metrics.observe_decision(
                decision.router,
                decision.router_version,
                decision.source.name,
                decision.latency_us / 1e6,
            )
        return decision

    @staticmethod
    def _check_input_kind(router: LoadedRouter, req: RouteInput) -> None:
        featurizer = router.featurizer
        if featurizer is None or not router.strategy.needs_features:
            return
        wants_vector = featurizer.input_kind == "vector"
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

    async def _decide_traced(self, router: LoadedRouter, req: RouteInput, start: int) -> Decision:
        """:meth:`_decide_now` inside a ``routeiq.route`` span (tracing on, the call sampled)."""
        assert self._tracer is not None
        if not get_current_span().is_recording():
            return await self._decide_now(router, req, start)
        with self._tracer.start_as_current_span("routeiq.route") as span:
            span.set_attributes(
                {
                    "routeiq.router": router.name,
                    "routeiq.router_version": router.version,
                    "routeiq.candidates": len(req.candidates),
                    "routeiq.request_id": req.request_id,
                }
            )
            decision = await self._decide_now(router, req, start)
            span.set_attributes(
                {"routeiq.source": decision.source.name, "routeiq.model": decision.model}
            )
            if decision.source is Source.FALLBACK:
                span.set_attribute("routeiq.fallback_reason", decision.reason)
            return decision

    def _span(self, name: str) -> AbstractContextManager[Any]:
        """A stage span under the current one; a shared no-op when tracing is off or the call
        is not sampled."""
        if self._tracer is None or not get_current_span().is_recording():
            return _NO_SPAN
        return self._tracer.start_as_current_span(name)

    async def _decide_now(self, router: LoadedRouter, req: RouteInput, start: int) -> Decision:
        strategy = router.strategy
        health = self._health.view(req.tenant)
        source = Source.STATIC
        try:
            if strategy.needs_features:
                choice, cached = await self._choose_learned(router, req, health)
                source = Source.CACHE if cached else Source.MODEL
            elif strategy.blocking:
                choice = await self._offload(
                    functools.partial(strategy.choose, req, None, health),
                    f"strategy {strategy.kind}",
                    router,
                )
            else:
                choice = strategy.choose(req, None, health)
            self._check_choice(req, choice)
        except Exception as exc:  # degrade, never fail, once the input is valid
            return self._degrade(router, req, exc, health, start)
        return _decision(router, req, choice, source, reason=choice.reason, start=start)

    async def _choose_learned(
        self, router: LoadedRouter, req: RouteInput, health: HealthCheck
    ) -> tuple[Choice, bool]:
        """The choice of a learned router, and whether its inference came from the cache.

        Prediction (cache, else features — the client's vector, the feature cache or the
        featurizer — and the router, in one micro-batched job), then the policy on the loop.
        """
        plan = self._plan(router)
        if plan.models and not any(c.name in plan.models for c in req.candidates):
            raise _Degraded("no candidate is a model this router knows", "unknown_models")
        scope = req.tenant
        if req.embedding is not None:
            digest = vector_digest(req.embedding)
        else:
            digest = text_digest(req.text())
        pkey, quality = await self._cached_prediction(router, plan, scope, digest)
        if quality is not None and plan.scored is not None:
            return self._policy(router, plan.scored, req, quality, health), True
        features, fkey = await self._cached_features(router, req, scope, digest)
        text = req.text() if features is None else None
        featurizer = router.featurizer
        what = (
            f"router {router.name}"
            if text is None or featurizer is None
            else f"featurizer {featurizer.name}"
        )
        try:
            with self._span("routeiq.inference") as span:
                if span is not None:
                    span.set_attribute("routeiq.featurize", text is not None)
                start = time.perf_counter()
                inference = await self._bounded(
                    plan.batcher.infer(text, features, plan.budget_s), what, plan.budget_s
                )
                self._stage_done(router, "inference", start)
        except Overloaded as exc:
            if self._metrics is not None:
                self._metrics.count_shed(router.name)
            raise _Degraded(str(exc), "shed") from None
        if fkey and features is None:
            self._cache.put(fkey, inference.features, FEATURES)
        if plan.scored is not None and inference.quality is not None:
            if pkey:
                self._cache.put(pkey, inference.quality, PREDICTIONS)
            return self._policy(router, plan.scored, req, inference.quality, health), False
        strategy = router.strategy  # a learned strategy without a separate prediction step
        call = functools.partial(strategy.choose, req, inference.features, health)
        if strategy.blocking:
            choice = await self._offload(call, f"strategy {strategy.kind}", router)
        else:
            choice = call()
        return choice, bool(fkey) and features is not None

    async def _cached_prediction(
        self, router: LoadedRouter, plan: _Plan, scope: str, digest: bytes
    ) -> tuple[str, Array | None]:
        """The prediction key (empty: this router's predictions are not cached — only scored
        routers of a known output width are) and the cached prediction, if there is one."""
        if plan.scored is None or not router.outputs:
            return "", None
        pkey = prediction_key(router.sha256, scope, digest)
        with self._span("routeiq.prediction_cache") as span:
            start = time.perf_counter()
            quality = await self._cache.get(pkey, PREDICTIONS)
            self._stage_done(router, "prediction_cache", start)
            if quality is not None and quality.shape != (router.outputs,):
                quality = None
            if span is not None:
                span.set_attribute("routeiq.cache_hit", quality is not None)
        return pkey, quality

    async def _cached_features(
        self, router: LoadedRouter, req: RouteInput, scope: str, digest: bytes
    ) -> tuple[Features | None, str]:
        """The request's feature row when the client sent it or the feature cache has it,
        and the feature key (empty for client vectors, which are not cached)."""
        if req.embedding is not None:
            return np.asarray(req.embedding, dtype=np.float32).reshape(1, -1), ""
        featurizer = router.featurizer
        if featurizer is None:
            raise _Degraded(f"router {router.name!r} has no featurizer", "no_featurizer")
        fkey = feature_key(featurizer.sha256, scope, digest)
        with self._span("routeiq.feature_cache") as span:
            start = time.perf_counter()
            features = await self._cache.get(fkey, FEATURES)
            self._stage_done(router, "feature_cache", start)
            if span is not None:
                span.set_attribute("routeiq.cache_hit", features is not None)
        return features, fkey

    def _policy(
        self,
        router: LoadedRouter,
        scored: ScoredStrategy,
        req: RouteInput,
        quality: Array,
        health: HealthCheck,
    ) -> Choice:
        """The scored router's policy over its predicted quality (on the event loop)."""
        with self._span("routeiq.policy"):
            start = time.perf_counter()
            choice = scored.choose_scored(req, quality, health)
            self._stage_done(router, "policy", start)
            return choice

    def _stage_done(self, router: LoadedRouter, stage: str, start: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_stage(router.name, stage, time.perf_counter() - start)

    def _plan(self, router: LoadedRouter) -> _Plan:
        key = (router.name, router.version)  # a champion and its challenger plan apart
        plan = self._plans.get(key)
        if plan is not None and plan.router is router:
            return plan
        strategy = router.strategy
        scored = strategy if isinstance(strategy, ScoredStrategy) else None
        batcher = InferenceBatcher(
            router.featurizer,
            scored.predict_batch if scored is not None else None,
            self._executor,
            max_batch=self._max_batch,
            max_batch_chars=self._max_batch_chars,
            max_running=self._max_running,
            inline_below_us=self._inline_below_us,
            on_batch=None
            if self._metrics is None
            else functools.partial(self._metrics.observe_batch, router.name),
            on_queue_wait=None
            if self._metrics is None
            else functools.partial(self._metrics.observe_queue_wait, router.name),
            tracer=self._tracer,
        )
        known = frozenset(router.models) | set(router.aliases)
        budget = self.budget_s(router) if self._executor is not None else None
        plan = _Plan(router, batcher, scored, known, budget)
        self._plans[key] = plan
        return plan

    @staticmethod
    async def _bounded(job: Awaitable[_T], what: str, timeout_s: float | None) -> _T:
        """Await ``job`` within ``timeout_s`` (a router's :meth:`budget_s`; None: no bound,
        as without an executor)."""
        if timeout_s is None:
            return await job
        try:
            return await asyncio.wait_for(job, timeout_s)
        except TimeoutError:
            raise _Degraded(f"{what} over {timeout_s * 1000:.0f} ms", "timeout") from None

    async def _offload(self, call: Callable[[], _T], what: str, router: LoadedRouter) -> _T:
        """Run ``call`` in the executor (inline without one) under the offload timeout."""
        if self._executor is None:
            return call()
        job = asyncio.get_running_loop().run_in_executor(self._executor, call)
        return await self._bounded(job, what, self.budget_s(router))

    @staticmethod
    def _check_choice(req: RouteInput, choice: Choice) -> None:
        if all(c.name != choice.model for c in req.candidates):
            raise _Degraded(f"strategy chose {choice.model!r}, not a candidate", "invalid_choice")

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
            extra={"request_id": request_id, "router": router},
        )

    def _degrade(
        self,
        router: LoadedRouter,
        req: RouteInput,
        exc: Exception,
        health: HealthCheck,
        start: int,
    ) -> Decision:
        why = str(exc) if isinstance(exc, _Degraded | StrategyError) else type(exc).__name__
        self._warn_degraded(router.name, req.request_id, why)
        if self._metrics is not None:
            self._metrics.count_fallback(router.name, _fallback_kind(exc))
        choice = self._fallback.choose(req, None, health)
        reason = f"{router.name} failed ({why}); fallback: {choice.reason}"
        return _decision(router, req, choice, Source.FALLBACK, reason=reason, start=start)


def _decision(
    router: LoadedRouter,
    req: RouteInput,
    choice: Choice,
    source: Source,
    *,
    reason: str,
    start: int,
) -> Decision:
    return Decision(
        request_id=req.request_id,
        model=choice.model,
        scores=choice.scores,
        router=router.name,
        router_version=router.version,
        source=source,
        reason=reason,
        latency_us=_since(start),
    )


def _with_lambda(req: RouteInput, budget: BudgetController) -> RouteInput:
    """``req`` with a budget's λ in place of its own (unchanged before the budget settles)."""
    lam = budget.next_lambda()
    if lam is None:
        return req
    return dataclasses.replace(req, policy=dataclasses.replace(req.policy, cost_weight=lam))


def _fallback_kind(exc: Exception) -> str:
    if isinstance(exc, _Degraded):
        return exc.kind
    return "strategy_error" if isinstance(exc, StrategyError) else "error"


def _since(start_ns: int) -> int:
    return (time.perf_counter_ns() - start_ns) // 1000
