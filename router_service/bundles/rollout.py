"""A router's rollout: which registry version is champion, and the challenger beside it.

Stored as ``<router>/rollout.json`` in the registry, so changing it needs no restart:

- ``champion``: the version that answers; unset means the newest version (a new publication
  serves as soon as it passes verification). ``promote`` and ``rollback`` pin it.
- ``challenger`` with ``mode: canary``: answers ``share`` of the requests, assigned by a hash of
  the request id (or of the label ``assign_by``), so one id always lands on the same side.
- ``challenger`` with ``mode: shadow``: decides for every request too, but only its decision is
  recorded; the champion's is the answer.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ROUTER_NAME", "Rollout", "in_share"]

ROUTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_SCALE = float(1 << 64)


class Rollout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    champion: int | None = Field(None, ge=1, description="unset: the newest version")
    challenger: int | None = Field(None, ge=1)
    mode: Literal["canary", "shadow"] = "canary"
    share: float = Field(0.0, ge=0.0, le=1.0, description="canary: the challenger's share")
    assign_by: str = Field(
        "request_id", min_length=1, description="request_id, or the name of a request label"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Rollout:
        if self.challenger is not None and self.challenger == self.champion:
            raise ValueError("the challenger cannot be the champion")
        if self.challenger is not None and self.mode == "canary" and not self.share > 0:
            raise ValueError("a canary challenger needs a share above 0")
        return self

    def describe(self) -> str:
        champion = "newest" if self.champion is None else str(self.champion)
        if self.challenger is None:
            return f"champion {champion}"
        if self.mode == "shadow":
            return f"champion {champion}, challenger {self.challenger} in shadow"
        return (
            f"champion {champion}, challenger {self.challenger} on {self.share:.1%} "
            f"by {self.assign_by}"
        )


def in_share(router: str, key: str, share: float) -> bool:
    """Whether ``key`` falls in the first ``share`` of ``router``'s hash space: stable across
    processes and restarts, independent between routers."""
    digest = hashlib.blake2b(f"{router}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < share
