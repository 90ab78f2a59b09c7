"""Ed25519 signatures over a bundle's manifest.

The manifest records the sha256 and size of every other file, so one signature over its exact
bytes covers the whole bundle. The signature lives beside it in ``signature.json``::

    {"algorithm": "ed25519", "key_id": "3f9a1c0b7d2e4a51", "signature": "<base64>"}

``key_id`` is the first 16 hex digits of the sha256 of the raw 32-byte public key; it names the
key in ``ListRouters`` and in refusals. Keys are PEM files: the private key (PKCS#8, written
with mode 0600) and ``KEY.pub`` (SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from router_service.errors import BundleError, ConfigError

__all__ = [
    "SIGNATURE_FILE",
    "TrustedKeys",
    "generate_keypair",
    "key_id",
    "sign_bundle",
    "verify_signature",
]

SIGNATURE_FILE = "signature.json"
_MAX_SIGNATURE_BYTES = 4096


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys the service accepts, by key id; ``required``: refuse unsigned bundles."""

    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    required: bool = False

    @classmethod
    def from_files(cls, paths: Sequence[Path], required: bool) -> TrustedKeys:
        keys: dict[str, Ed25519PublicKey] = {}
        for path in paths:
            try:
                key = serialization.load_pem_public_key(Path(path).read_bytes())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"bundles.public_keys: cannot read {path}: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError(f"bundles.public_keys: {path} is not an Ed25519 public key")
            keys[key_id(key)] = key
        if required and not keys:
            raise ConfigError("bundles.require_signature is set but bundles.public_keys is empty")
        return cls(keys, required)


def verify_signature(where: Path, manifest: bytes, trusted: TrustedKeys) -> str:
    """The key id that signed ``manifest`` (bytes of ``where``/manifest.json), or "" when the
    bundle is unsigned and no signature is required (or no keys are configured: a signature
    that cannot be checked is not reported). :class:`BundleError` when it must not serve."""
    sig_path = where / SIGNATURE_FILE
    if not trusted.keys:
        return ""
    if not sig_path.is_file():
        if trusted.required:
            raise BundleError(f"{where}: unsigned, and bundles.require_signature is set")
        return ""
    raw = sig_path.read_bytes()
    try:
        if len(raw) > _MAX_SIGNATURE_BYTES:
            raise ValueError("too large")
        doc = json.loads(raw)
        kid = str(doc["key_id"])
        if doc.get("algorithm") != "ed25519":
            raise ValueError(f"algorithm {doc.get('algorithm')!r} is not ed25519")
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{where}: {SIGNATURE_FILE} is invalid ({exc})") from None
    key = trusted.keys.get(kid)
    if key is None:
        raise BundleError(
            f"{where}: signed by key {kid}, which is not in bundles.public_keys "
            f"({', '.join(sorted(trusted.keys))})"
        )
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        raise BundleError(
            f"{where}: the signature of key {kid} does not match manifest.json"
        ) from None
    return kid


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot read the signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def sign_bundle(bundle: Path, private_key: Path) -> str:
    """Sign ``bundle``/manifest.json with the key in ``private_key``; returns the key id."""
    key = _private_key(private_key)
    manifest = (bundle / "manifest.json").read_bytes()
    kid = key_id(key.public_key())
    doc = {
        "algorithm": "ed25519",
        "key_id": kid,
        "signature": base64.b64encode(key.sign(manifest)).decode(),
    }
    tmp = bundle / f".{SIGNATURE_FILE}.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, bundle / SIGNATURE_FILE)
    return kid


def generate_keypair(out: Path) -> str:
    """Write a new private key to ``out`` (mode 0600) and its public key to ``out``.pub;
    refuses to overwrite. Returns the key id."""
    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists():
            raise FileExistsError(f"{path} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(key.public_key())
