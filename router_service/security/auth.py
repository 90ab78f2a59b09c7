"""Bearer-token authentication: each token stands for a tenant and the routers it may use.

Tokens are kept as their sha256 (in ``auth.tokens_file`` or ``auth.tokens``); a caller's token
is hashed and compared with every stored hash in constant time (``hmac.compare_digest``, no early
exit). The tenant of the token becomes the request's ``tenant`` label, replacing whatever the
caller sent, so a client cannot speak for another tenant; a router outside the token's list is
``PERMISSION_DENIED``. Tokens and their hashes are never logged.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from router_service.config import AuthSettings, TokenSpec
from router_service.domain import TENANT_LABEL
from router_service.errors import ConfigError, PermissionDenied, Unauthenticated, field_problems

__all__ = ["CALLER", "Principal", "TokenAuth", "hash_token"]

BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant its token speaks for, and the routers it may use (None:
    every router)."""

    tenant: str
    routers: frozenset[str] | None = None

    def check_router(self, name: str) -> None:
        if self.routers is not None and name not in self.routers:
            raise PermissionDenied(f"this token may not use router {name!r}")

    def may_use(self, name: str) -> bool:
        return self.routers is None or name in self.routers

    def scoped(self, labels: Mapping[str, str]) -> dict[str, str]:
        """``labels`` with this caller's tenant, replacing whatever ``tenant`` they held."""
        return {**labels, TENANT_LABEL: self.tenant}


CALLER: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "routeiq_caller", default=None
)
"""The authenticated caller of the call being handled (None when auth is off)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[TokenSpec]


class TokenAuth:
    """Checks ``authorization`` metadata against the configured token hashes."""

    def __init__(self, specs: Iterable[TokenSpec]) -> None:
        self._entries = [
            (
                bytes.fromhex(s.sha256),
                Principal(s.tenant, None if "*" in s.routers else frozenset(s.routers)),
            )
            for s in specs
        ]
        if not self._entries:
            raise ConfigError("auth is on but no token is configured")

    @classmethod
    def from_settings(cls, cfg: AuthSettings) -> TokenAuth | None:
        if not cfg.enabled:
            return None
        specs = list(cfg.tokens)
        if cfg.tokens_file is not None:
            specs += _read_tokens(cfg.tokens_file)
        return cls(specs)

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The caller's principal; :class:`Unauthenticated` without a known bearer token."""
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if header is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        text = header.decode() if isinstance(header, bytes) else header
        if not text[: len(BEARER)].lower() == BEARER:
            raise Unauthenticated("the authorization metadata is not a bearer token")
        digest = hashlib.sha256(text[len(BEARER) :].strip().encode()).digest()
        found = None
        for stored, principal in self._entries:  # every entry, so the time says nothing
            if hmac.compare_digest(stored, digest):
                found = principal
        if found is None:
            raise Unauthenticated("unknown token")
        return found


def _read_tokens(path: Path) -> list[TokenSpec]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"auth.tokens_file {path}: cannot read it ({type(exc).__name__})"
        ) from None
    try:
        return _TokensFile.model_validate(raw).tokens
    except ValidationError as exc:
        raise ConfigError(
            f"auth.tokens_file {path}: invalid:\n{field_problems(exc.errors())}"
        ) from None
