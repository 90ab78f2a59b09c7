"""Registry operations behind ``routeiq-bundle publish | list | promote | rollback | rollout``.

The registry layout and the rollout file are described in
:mod:`router_service.bundles.store` and :mod:`router_service.bundles.rollout`; the service
follows them (:mod:`router_service.bundles.registry`).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from router_service.bundles.rollout import Rollout
from router_service.bundles.signing import sign_bundle
from router_service.bundles.store import RegistryStore, RouterListing, open_store
from router_service.bundles.verify import verify_bundle
from router_service.config import S3Settings
from router_service.errors import BundleError

__all__ = ["Published", "open_registry", "promote", "publish", "rollback", "set_rollout"]

MAX_FILE_BYTES = 256 * 1024 * 1024  # the service's default bundle_max_file_bytes


@dataclass(frozen=True)
class Published:
    router: str
    version: int
    sha256: str
    signed_by: str


def open_registry(source: str, endpoint_url: str | None = None) -> RegistryStore:
    return open_store(source, S3Settings(endpoint_url=endpoint_url))


def publish(
    store: RegistryStore,
    bundle: Path,
    sign_key: Path | None = None,
    *,
    hold: bool = False,
) -> Published:
    """Verify ``bundle`` and publish it as its router's next version (signed with
    ``sign_key`` when given; the source directory is not modified). ``hold``: pin the
    champion first (when it follows the newest version), so the new version does not serve
    until a rollout or ``promote`` says so."""
    verified = verify_bundle(bundle, MAX_FILE_BYTES)
    name = verified.manifest.name
    if hold:
        listing = store.listing().get(name, RouterListing())
        if listing.rollout.champion is None and listing.newest is not None:
            store.write_rollout(
                name, listing.rollout.model_copy(update={"champion": listing.newest})
            )
    with tempfile.TemporaryDirectory(prefix="routeiq-publish-") as tmp:
        source = bundle
        signed_by = ""
        if sign_key is not None:
            source = Path(tmp) / "bundle"
            shutil.copytree(bundle, source, ignore=shutil.ignore_patterns(".*"))
            signed_by = sign_bundle(source, sign_key)
        version = store.publish(name, source)
    return Published(name, version, verified.sha256, signed_by)


def _listing(store: RegistryStore, router: str) -> RouterListing:
    listing = store.listing().get(router)
    if listing is None or not listing.versions:
        raise BundleError(f"{store.description}: no versions of router {router!r}")
    if listing.rollout_error:
        raise BundleError(f"{store.description}/{router}: {listing.rollout_error}; fix it first")
    return listing


def _need(listing: RouterListing, router: str, version: int) -> None:
    if version not in listing.versions:
        raise BundleError(
            f"router {router!r} has no version {version}; "
            f"versions: {', '.join(map(str, sorted(listing.versions)))}"
        )


def promote(
    store: RegistryStore, router: str, version: int | None = None, *, newest: bool = False
) -> Rollout:
    """Pin ``version`` as champion; without one, the challenger becomes the champion;
    ``newest``: unpin, the newest version serves (and every later publication). Either way
    the rollout ends (no challenger)."""
    listing = _listing(store, router)
    if newest:
        rollout = Rollout()
        store.write_rollout(router, rollout)
        return rollout
    if version is None:
        if listing.rollout.challenger is None:
            raise BundleError(f"router {router!r} has no challenger to promote; name a version")
        version = listing.rollout.challenger
    _need(listing, router, version)
    rollout = Rollout(champion=version)
    store.write_rollout(router, rollout)
    return rollout


def rollback(store: RegistryStore, router: str, to: int | None = None) -> Rollout:
    """Pin the champion to ``to``, else to the newest version below the current champion.
    The rollout ends; later publications do not serve until ``promote``."""
    listing = _listing(store, router)
    current = listing.rollout.champion or listing.newest
    assert current is not None
    if to is None:
        older = [v for v in listing.versions if v < current]
        if not older:
            raise BundleError(f"router {router!r}: no version below {current} to roll back to")
        to = max(older)
    _need(listing, router, to)
    rollout = Rollout(champion=to)
    store.write_rollout(router, rollout)
    return rollout


def set_rollout(
    store: RegistryStore,
    router: str,
    *,
    challenger: int | None = None,
    share: float = 0.0,
    shadow: bool = False,
    assign_by: str = "request_id",
) -> Rollout:
    """Start (``challenger`` with ``share``, or in ``shadow``) or end (``challenger=None``) a
    rollout; the champion stays as it is (pinned, or the newest version)."""
    listing = _listing(store, router)
    champion = listing.rollout.champion
    if challenger is None:
        rollout = Rollout(champion=champion)
    else:
        _need(listing, router, challenger)
        if champion is None:  # pin the champion, so publications do not move it meanwhile
            champion = max(v for v in listing.versions if v != challenger)
        rollout = Rollout(
            champion=champion,
            challenger=challenger,
            mode="shadow" if shadow else "canary",
            share=0.0 if shadow else share,
            assign_by=assign_by,
        )
    store.write_rollout(router, rollout)
    return rollout
