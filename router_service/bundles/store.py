"""Registry storage: ``<router>/<version>/`` bundles and ``<router>/rollout.json``, in a directory
tree or under an S3 prefix.

Versions are whole numbers given by ``publish`` (1, 2, 3, ...), never reused. A version is
visible only once complete: in a directory it is written under a temporary name (``.tmp-*``)
and renamed into place; in object storage its ``manifest.json`` is written last, so a version
without one is not listed. Nothing here verifies a bundle: the registry does, before serving.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from router_service.bundles.rollout import ROUTER_NAME, Rollout
from router_service.bundles.signing import SIGNATURE_FILE
from router_service.config import S3Settings
from router_service.errors import BundleError, ConfigError

__all__ = ["DirStore", "RegistryStore", "RouterListing", "S3Store", "open_store"]

ROLLOUT_FILE = "rollout.json"
MANIFEST = "manifest.json"
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")
_ROUTER = re.compile(ROUTER_NAME)
_MAX_ROLLOUT_BYTES = 64 * 1024


@dataclass(frozen=True)
class RouterListing:
    """One router in the registry: its complete versions (version → a fingerprint of its
    manifest that changes if the version is rewritten) and its rollout."""

    versions: dict[int, str] = field(default_factory=dict)
    rollout: Rollout = field(default_factory=Rollout)
    rollout_error: str = ""
    """Why rollout.json could not be read ("" when it could, or is absent)."""

    @property
    def newest(self) -> int | None:
        return max(self.versions) if self.versions else None


class RegistryStore(Protocol):
    description: str

    def listing(self) -> dict[str, RouterListing]: ...

    def fetch(self, router: str, version: int, max_file_bytes: int) -> Path:
        """A local directory holding the version's files."""
        ...

    def publish(self, router: str, bundle: Path) -> int:
        """Copy the bundle directory in as the next version; returns that version."""
        ...

    def write_rollout(self, router: str, rollout: Rollout) -> None: ...

    def retain(self, router: str, versions: set[int]) -> None:
        """Local copies of ``router``'s other versions may go (nothing serves them)."""
        ...

    def close(self) -> None: ...


def _parse_rollout(raw: bytes | None) -> tuple[Rollout, str]:
    if raw is None:
        return Rollout(), ""
    if len(raw) > _MAX_ROLLOUT_BYTES:
        return Rollout(), f"{ROLLOUT_FILE} is over {_MAX_ROLLOUT_BYTES} bytes"
    try:
        return Rollout.model_validate(json.loads(raw)), ""
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()
        return Rollout(), f"{ROLLOUT_FILE} is invalid: {' '.join(first[:3])}"


def _rollout_bytes(rollout: Rollout) -> bytes:
    return (json.dumps(rollout.model_dump(exclude_defaults=True), indent=2) + "\n").encode()


def _bundle_files(bundle: Path) -> list[Path]:
    """The files to publish: manifest last, signature just before it, no hidden files."""
    if not (bundle / MANIFEST).is_file():
        raise BundleError(f"{bundle}: no {MANIFEST} (is this a bundle directory?)")
    files = sorted(
        p
        for p in bundle.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in (MANIFEST, SIGNATURE_FILE)
    )
    if (bundle / SIGNATURE_FILE).is_file():
        files.append(bundle / SIGNATURE_FILE)
    return [*files, bundle / MANIFEST]


class DirStore:
    """A registry in a directory tree (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)

    def _routers(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for path in self.root.iterdir():
            if path.is_dir() and _ROUTER.match(path.name):
                yield path

    def listing(self) -> dict[str, RouterListing]:
        out: dict[str, RouterListing] = {}
        for rdir in self._routers():
            versions: dict[int, str] = {}
            for vdir in rdir.iterdir():
                if not _VERSION.match(vdir.name):
                    continue
                try:
                    st = (vdir / MANIFEST).stat()
                except OSError:
                    continue  # not (or no longer) a complete version
                versions[int(vdir.name)] = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
            try:
                raw: bytes | None = (rdir / ROLLOUT_FILE).read_bytes()
            except FileNotFoundError:
                raw = None
            rollout, error = _parse_rollout(raw)
            if versions or raw is not None:
                out[rdir.name] = RouterListing(versions, rollout, error)
        return out

    def fetch(self, router: str, version: int, max_file_bytes: int) -> Path:
        path = self.root / router / str(version)
        if not (path / MANIFEST).is_file():
            raise BundleError(f"{path}: no such version")
        return path

    def publish(self, router: str, bundle: Path) -> int:
        rdir = self.root / router
        rdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=rdir))
        try:
            for file in _bundle_files(bundle):
                shutil.copyfile(file, tmp / file.name)
            tmp.chmod(0o755)
            version = max(self.listing().get(router, RouterListing()).versions, default=0) + 1
            while True:  # another publisher may take a number first: take the next one
                try:
                    os.rename(tmp, rdir / str(version))
                    return version
                except OSError:
                    if not (rdir / str(version)).exists():
                        raise
                    version += 1
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def retain(self, router: str, versions: set[int]) -> None:
        """Nothing to do: versions are served in place."""

    def close(self) -> None:
        """Nothing to release."""

    def write_rollout(self, router: str, rollout: Rollout) -> None:
        rdir = self.root / router
        rdir.mkdir(parents=True, exist_ok=True)
        tmp = rdir / f".{ROLLOUT_FILE}.tmp"
        tmp.write_bytes(_rollout_bytes(rollout))
        os.replace(tmp, rdir / ROLLOUT_FILE)


class S3Store:
    """A registry under ``s3://bucket/prefix`` (any S3-compatible object storage)."""

    def __init__(self, url: str, s3: S3Settings, cache_dir: Path | None = None) -> None:
        import boto3  # noqa: PLC0415 - only a registry in object storage needs it
        from botocore.config import Config  # noqa: PLC0415

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.description = url
        self._client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name=s3.region,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key,
            config=Config(
                connect_timeout=s3.timeout_s,
                read_timeout=s3.timeout_s,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )
        self._owns_cache = cache_dir is None
        self._cache = cache_dir or Path(tempfile.mkdtemp(prefix="routeiq-registry-"))
        self._rollouts: dict[str, tuple[str, Rollout, str]] = {}  # router → (etag, parsed)

    def _objects(self, under: str) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + under
        )
        for page in pages:
            yield from page.get("Contents", [])

    def listing(self) -> dict[str, RouterListing]:
        versions: dict[str, dict[int, str]] = {}
        rollouts: dict[str, str] = {}
        for obj in self._objects(""):
            parts = obj["Key"][len(self.prefix) :].split("/")
            if not _ROUTER.match(parts[0]):
                continue
            if len(parts) == 2 and parts[1] == ROLLOUT_FILE:
                rollouts[parts[0]] = obj["ETag"]
            elif len(parts) == 3 and parts[2] == MANIFEST and _VERSION.match(parts[1]):
                versions.setdefault(parts[0], {})[int(parts[1])] = obj["ETag"]
        out: dict[str, RouterListing] = {}
        for router in sorted(set(versions) | set(rollouts)):
            rollout, error = self._rollout(router, rollouts.get(router))
            out[router] = RouterListing(versions.get(router, {}), rollout, error)
        return out

    def _rollout(self, router: str, etag: str | None) -> tuple[Rollout, str]:
        if etag is None:
            return Rollout(), ""
        known = self._rollouts.get(router)
        if known is not None and known[0] == etag:
            return known[1], known[2]
        body = self._client.get_object(Bucket=self.bucket, Key=self._key(router, ROLLOUT_FILE))
        raw = body["Body"].read(_MAX_ROLLOUT_BYTES + 1)
        rollout, error = _parse_rollout(raw)
        self._rollouts[router] = (etag, rollout, error)
        return rollout, error

    def _key(self, router: str, *rest: str) -> str:
        return self.prefix + "/".join((router, *rest))

    def fetch(self, router: str, version: int, max_file_bytes: int) -> Path:
        under = f"{router}/{version}/"
        objects = list(self._objects(under))
        manifest = next((o for o in objects if o["Key"].endswith("/" + MANIFEST)), None)
        if manifest is None:
            raise BundleError(f"{self.description}/{under}: no such version")
        local = self._cache / router / f"{version}-{manifest['ETag'].strip(chr(34))[:16]}"
        if (local / MANIFEST).is_file():
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=local.parent))
        try:
            for obj in objects:
                name = obj["Key"][len(self.prefix) + len(under) :]
                if "/" in name or name.startswith("."):
                    continue
                if obj["Size"] > max_file_bytes:
                    raise BundleError(
                        f"{self.description}/{under}{name} is {obj['Size']} bytes, over the cap "
                        f"of {max_file_bytes}"
                    )
                self._client.download_file(self.bucket, obj["Key"], str(tmp / name))
            os.replace(tmp, local)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return local

    def publish(self, router: str, bundle: Path) -> int:
        files = _bundle_files(bundle)
        version = max(self.listing().get(router, RouterListing()).versions, default=0) + 1
        while not self._claim(router, version):  # another publisher took it: the next one
            version += 1
        for file in files[:-1]:
            key = self._key(router, str(version), file.name)
            self._client.upload_file(str(file), self.bucket, key)
        self._client.upload_file(  # the manifest last: it makes the version visible
            str(files[-1]), self.bucket, self._key(router, str(version), MANIFEST)
        )
        return version

    def _claim(self, router: str, version: int) -> bool:
        """Create ``<version>/.claim`` only if absent (a conditional write), so two publishers
        never write into the same version."""
        from botocore.exceptions import ClientError  # noqa: PLC0415 - see __init__

        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(router, str(version), ".claim"),
                Body=b"",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "409"):
                return False
            raise
        return True

    def retain(self, router: str, versions: set[int]) -> None:
        """Delete downloaded versions of ``router`` other than ``versions``."""
        rdir = self._cache / router
        if not rdir.is_dir():
            return
        for local in rdir.iterdir():
            head = local.name.partition("-")[0]
            if not local.name.startswith(".") and head.isdigit() and int(head) not in versions:
                shutil.rmtree(local, ignore_errors=True)

    def close(self) -> None:
        """Remove the download directory when it is a temporary one of this store's."""
        if self._owns_cache:
            shutil.rmtree(self._cache, ignore_errors=True)

    def write_rollout(self, router: str, rollout: Rollout) -> None:
        self._client.put_object(
            Bucket=self.bucket, Key=self._key(router, ROLLOUT_FILE), Body=_rollout_bytes(rollout)
        )


def open_store(
    source: str, s3: S3Settings | None = None, cache_dir: Path | None = None
) -> RegistryStore:
    """The store for ``source``: ``s3://bucket/prefix`` or a directory."""
    if source.startswith("s3://"):
        return S3Store(source, s3 or S3Settings(), cache_dir)
    if "://" in source:
        raise ConfigError(f"registry source {source!r}: use a directory or s3://bucket/prefix")
    return DirStore(Path(source))
