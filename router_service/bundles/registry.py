"""The one owner of the router table: sources → load → verify → warm → swap → drain.

Sources: the config's static strategies, fixed bundle directories (``bundles.paths``), and a
registry (``registry.source``: a directory tree or ``s3://bucket/prefix``, see
:mod:`router_service.bundles.store`) that the service follows while it runs.

Following the registry: every ``registry.poll_s`` (and, for a directory, on filesystem events
after ``registry.debounce_ms`` of quiet) the source is listed; for each router the target
version is the rollout's pinned champion, else the newest version. A new target is loaded
beside the one serving, verified (hashes, sizes, ``onnx.checker``, operator allow-list, the
signature when keys are configured; the graph checks run in a child process at low CPU
priority, because ``onnx.checker`` holds the GIL for tens of milliseconds on a large graph),
warmed, and swapped in as a new immutable table; calls in flight finish on the table they
started with. A version that fails is refused (logged with the
reason, counted in ``routeiq_registry_refused_total``, not retried) and the version serving
keeps serving. Rapid publications coalesce: each pass loads only the newest target. Versions
never move back on their own (a deleted newest version leaves the current one serving): only a
pinned champion (``routeiq-bundle rollback`` / ``promote``) moves them back. At start-up a
refused target falls back to the newest older version that passes, so a replica can start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from router_service.bundles.base import LoadedRouter, RolloutPlan, RouterTable
from router_service.bundles.loader import BundleDirSource, load_bundle
from router_service.bundles.rollout import Rollout
from router_service.bundles.signing import TrustedKeys
from router_service.bundles.static_source import StaticSource
from router_service.bundles.store import DirStore, RegistryStore, RouterListing, open_store
from router_service.bundles.verify import IsolatedChecker
from router_service.config import Settings
from router_service.errors import BundleError, ConfigError
from router_service.metrics import Metrics
from router_service.strategies.registry import StrategyRegistry

__all__ = ["RouterRegistry", "load_routers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Served:
    version: int
    fingerprint: str
    router: LoadedRouter


class RouterRegistry:
    """Builds the table at start-up (:meth:`load`), then follows the registry source
    (:meth:`start`), handing every new table to ``install`` on the event loop."""

    def __init__(
        self,
        settings: Settings,
        strategies: StrategyRegistry,
        install: Callable[[RouterTable], None],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._strategies = strategies
        self._install = install
        self._metrics = metrics
        self._trusted = TrustedKeys.from_files(
            settings.bundles.public_keys, settings.bundles.require_signature
        )
        reg = settings.registry
        self._store: RegistryStore | None = (
            None if reg.source is None else open_store(reg.source, reg.s3, reg.cache_dir)
        )
        self._fixed: dict[str, LoadedRouter] = {}
        self._champions: dict[str, _Served] = {}
        self._challengers: dict[str, tuple[Rollout, _Served]] = {}
        self._rollouts: dict[str, Rollout] = {}
        self._refused: dict[tuple[str, int], str] = {}  # (router, version) → its fingerprint
        self._said: set[str] = set()  # one-off notices already logged
        self._default = ""
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._checker = IsolatedChecker()
        self.passes = 0  # completed passes over the source (tests wait on it)

    @property
    def source(self) -> str:
        return "" if self._store is None else self._store.description

    # -- start-up -------------------------------------------------------------------------
    def load(self) -> RouterTable:
        """The first table (blocking: run it off the event loop). ConfigError or BundleError
        when the config's own routers and bundles cannot all be served."""
        s = self._settings
        static = StaticSource(s.routers, self._strategies).load()
        learned = BundleDirSource(
            s.bundles.paths, s.bundle_max_file_bytes, s.aliases, self._trusted
        ).load()
        for router in [*static, *learned]:
            if router.name in self._fixed:
                raise ConfigError(f"two routers are named {router.name!r}")
            self._fixed[router.name] = router
        if isinstance(self._store, DirStore) and not self._store.root.is_dir():
            raise ConfigError(
                f"registry.source {self._store.root} is not a directory "
                "(create it, or publish a bundle to it first)"
            )
        if self._store is not None:
            try:
                self._pass(initial=True)
            except Exception as exc:  # an unreachable registry must not stop the service
                log.error("registry %s: cannot list it (%s); will retry", self.source, exc)
        bundles = [r.name for r in learned] + sorted(self._champions)
        self._default = s.resolved_default(bundles)
        orphans = sorted(set(s.aliases) - set(bundles))
        if orphans:
            raise ConfigError(
                f"aliases name routers that are not loaded bundles: {', '.join(orphans)}; "
                f"bundles: {', '.join(bundles) or 'none'}"
            )
        table = self._table()
        unknown = sorted(set(s.engine.router_timeouts_ms) - set(table.routers))
        if unknown:
            raise ConfigError(
                f"engine.router_timeouts_ms names routers that are not loaded: "
                f"{', '.join(unknown)}; loaded: {', '.join(sorted(table.routers))}"
            )
        for what, name in [("budgets", b.router) for b in s.budgets] + [
            ("exploration", r) for r in s.exploration
        ]:
            served = table.routers.get(name)
            if served is None or not served.outputs:
                raise ConfigError(
                    f"{what}: {name!r} is not a loaded learned router; learned: "
                    + ", ".join(sorted(n for n, r in table.routers.items() if r.outputs))
                )
        return table

    # -- following the source -------------------------------------------------------------
    def start(self) -> None:
        """Follow the registry (no-op without one); call on the event loop after :meth:`load`."""
        if self._store is None or self._tasks:
            return
        self._wake = asyncio.Event()
        self._checker.start()
        self._tasks.append(asyncio.create_task(self._follow(), name="registry-follow"))
        if isinstance(self._store, DirStore) and self._settings.registry.watch:
            self._tasks.append(asyncio.create_task(self._watch(self._store.root), name="watch"))

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._checker.close()
        if self._store is not None:
            self._store.close()

    def wake(self) -> None:
        """List the source now rather than at the next poll."""
        if self._wake is not None:
            self._wake.set()

    async def _follow(self) -> None:
        assert self._wake is not None
        poll_s = self._settings.registry.poll_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)
            self._wake.clear()
            try:
                changed = await asyncio.to_thread(self._pass)
            except Exception as exc:  # a registry that fails to list: keep serving, retry
                self._once(f"list:{exc}", logging.ERROR, "registry %s: %s", self.source, exc)
                continue
            if changed:
                self._install(self._table())
            self.passes += 1

    async def _watch(self, root: Path) -> None:
        import watchfiles  # noqa: PLC0415 - only a directory registry with watch on

        debounce = self._settings.registry.debounce_ms
        logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every batch at INFO
        try:
            async for _ in watchfiles.awatch(
                root, debounce=debounce, step=min(50, max(debounce, 1)), stop_event=self._stop
            ):
                self.wake()
        except Exception as exc:  # polling still follows the registry
            log.warning("registry %s: filesystem events stopped (%s); polling only", root, exc)

    # -- one pass -------------------------------------------------------------------------
    def _pass(self, initial: bool = False) -> bool:
        """List the source and load what changed (blocking). True when the table changed."""
        assert self._store is not None
        changed = False
        for name, listing in sorted(self._store.listing().items()):
            if name in self._fixed:
                self._once(
                    f"clash:{name}",
                    logging.ERROR,
                    "registry %s: router %r is also a configured router; not following it",
                    self.source,
                    name,
                )
                continue
            changed |= self._sync(name, listing, initial)
            serving = {s.version for s in (self._champions.get(name),) if s is not None}
            challenger = self._challengers.get(name)
            if challenger is not None:
                serving.add(challenger[1].version)
            self._store.retain(name, serving)
        return changed

    def _sync(self, name: str, listing: RouterListing, initial: bool) -> bool:
        rollout = self._rollouts.get(name, Rollout())
        if listing.rollout_error:
            self._once(
                f"rollout:{name}:{listing.rollout_error}",
                logging.ERROR,
                "router %s: %s; keeping %s",
                name,
                listing.rollout_error,
                rollout.describe(),
            )
        else:
            rollout = listing.rollout
        changed = self._sync_champion(name, listing, rollout, initial)
        changed |= self._sync_challenger(name, listing, rollout)
        changed |= self._rollouts.get(name) != rollout
        self._rollouts[name] = rollout
        return changed

    def _champion_target(
        self, name: str, listing: RouterListing, rollout: Rollout
    ) -> tuple[int, str] | None:
        """The version (and its fingerprint) that should be champion, or None to keep the
        one serving: the pinned champion, else the newest version, never an older one."""
        current = self._champions.get(name)
        target = rollout.champion or listing.newest
        if target is None:
            return None
        if rollout.champion is None and current is not None and target < current.version:
            self._once(
                f"back:{name}:{target}",
                logging.WARNING,
                "router %s: newest version is %d, below %d serving; versions move back only "
                "by rollback",
                name,
                target,
                current.version,
            )
            return None
        fingerprint = listing.versions.get(target)
        if fingerprint is None:
            self._once(
                f"missing:{name}:{target}",
                logging.ERROR,
                "router %s: champion %d is not in the registry",
                name,
                target,
            )
            return None
        if current is not None and (current.version, current.fingerprint) == (target, fingerprint):
            return None
        return target, fingerprint

    def _sync_champion(
        self, name: str, listing: RouterListing, rollout: Rollout, initial: bool
    ) -> bool:
        found = self._champion_target(name, listing, rollout)
        if found is None:
            return False
        target = found[0]
        current = self._champions.get(name)
        challenger = self._challengers.get(name)
        if challenger is not None and (challenger[1].version, challenger[1].fingerprint) == found:
            self._champions[name] = challenger[1]  # promoted: already verified, loaded and warm
            self._swapped(name, "champion", current, challenger[1])
            return True
        candidates = [target]
        if initial:  # a replica starting with a refused newest version serves the one before
            candidates += sorted((v for v in listing.versions if v < target), reverse=True)
        for version in candidates:
            served = self._load(
                name, version, listing.versions[version], "champion", isolated=not initial
            )
            if served is not None:
                if version != target:
                    log.warning(
                        "router %s: serving version %d (%d was refused)", name, version, target
                    )
                self._champions[name] = served
                self._swapped(name, "champion", current, served)
                return True
        return False

    def _sync_challenger(self, name: str, listing: RouterListing, rollout: Rollout) -> bool:
        current = self._challengers.get(name)
        version = rollout.challenger
        fingerprint = None if version is None else listing.versions.get(version)
        if version is None or fingerprint is None or name not in self._champions:
            if version is not None and fingerprint is None:
                self._once(
                    f"missing:{name}:{version}",
                    logging.ERROR,
                    "router %s: challenger %d is not in the registry",
                    name,
                    version,
                )
            return self._challengers.pop(name, None) is not None
        if current is not None and (current[1].version, current[1].fingerprint) == (
            version,
            fingerprint,
        ):
            self._challengers[name] = (rollout, current[1])
            return current[0] != rollout
        served = self._load(name, version, fingerprint, "challenger")
        if served is None:
            return self._challengers.pop(name, None) is not None
        self._challengers[name] = (rollout, served)
        self._swapped(name, "challenger", None if current is None else current[1], served)
        return True

    def _load(
        self, name: str, version: int, fingerprint: str, side: str, isolated: bool = True
    ) -> _Served | None:
        """Fetch, verify, build and warm one version; None when refused (remembered, with the
        fingerprint, so it is not retried) or when the source failed (retried next pass)."""
        assert self._store is not None
        if self._refused.get((name, version)) == fingerprint:
            return None
        s = self._settings
        try:
            path = self._store.fetch(name, version, s.bundle_max_file_bytes)
            # while serving, graphs are checked in a child process (the checker holds the GIL)
            checked = self._checker.check(path, s.bundle_max_file_bytes) if isolated else None
            router = load_bundle(
                path,
                s.bundle_max_file_bytes,
                s.aliases,
                self._trusted,
                version=str(version),
                origin=f"{self.source.rstrip('/')}/{name}/{version}",
                graphs_checked=checked,
            )
            if router.name != name:
                raise BundleError(f"its manifest names router {router.name!r}, not {name!r}")
        except BundleError as exc:
            self._refused[(name, version)] = fingerprint
            if self._metrics is not None:
                self._metrics.count_refused(name)
            serving = self._champions.get(name)
            log.error(
                "router %s: refused version %d as %s: %s; %s",
                name,
                version,
                side,
                exc,
                f"version {serving.version} keeps serving" if serving else "nothing to serve",
            )
            return None
        except Exception as exc:
            log.warning("router %s: cannot fetch version %d (%s); will retry", name, version, exc)
            return None
        return _Served(version, fingerprint, router)

    def _swapped(self, name: str, side: str, old: _Served | None, new: _Served) -> None:
        if self._metrics is not None:
            self._metrics.count_swap(name, side)
        info = new.router.info
        log.info(
            "router %s: %s version %d%s (sha %s, %s)",
            name,
            side,
            new.version,
            "" if old is None else f" replaces {old.version}",
            new.router.sha256[:12],
            f"signed by {info.signed_by}" if info and info.signed_by else "unsigned",
        )

    def _table(self) -> RouterTable:
        routers = dict(self._fixed)
        routers.update({name: s.router for name, s in self._champions.items()})
        rollouts = {
            name: RolloutPlan(
                served.router,
                shadow=rollout.mode == "shadow",
                share=rollout.share,
                assign_by=rollout.assign_by,
                description=rollout.describe(),
            )
            for name, (rollout, served) in self._challengers.items()
        }
        return RouterTable(routers=routers, default=self._default, rollouts=rollouts)

    def _once(self, key: str, level: int, msg: str, *args: object) -> None:
        """Log a condition once while it lasts (the source is listed every few seconds)."""
        if key in self._said:
            return
        if len(self._said) > 10_000:
            self._said.clear()
        self._said.add(key)
        log.log(level, msg, *args)


def load_routers(settings: Settings, strategies: StrategyRegistry) -> RouterTable:
    """The table a service with ``settings`` starts with (no following)."""
    return RouterRegistry(settings, strategies, install=lambda _: None).load()
