"""The in-process tier: an LRU bounded by entry count and total bytes, with a TTL per entry.
Single-threaded by design (it lives on the event loop).

Values are kept decoded (a hit costs no parsing); each entry is charged the size of its encoded
form, which the caller passes in.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LruCache"]

_V = TypeVar("_V")


class LruCache(Generic[_V]):
    """``get`` refreshes recency and drops expired entries; ``put`` evicts the least recently
    used entries until both bounds hold. A value larger than ``max_bytes`` is not stored."""

    def __init__(
        self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[str, tuple[_V, int, float]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def enabled(self) -> bool:
        return self._max_entries > 0 and self._max_bytes > 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> _V | None:
        item = self._data.get(key)
        if item is None:
            return None
        if self._clock() >= item[2]:
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return item[0]

    def put(self, key: str, value: _V, nbytes: int, ttl_s: float) -> None:
        """Store ``value``, charged ``len(key) + nbytes`` against the byte bound."""
        size = len(key) + nbytes
        if size > self._max_bytes or self._max_entries == 0:
            return
        if key in self._data:
            self._drop(key)
        self._data[key] = (value, size, self._clock() + ttl_s)
        self._bytes += size
        while len(self._data) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._data)))

    def _drop(self, key: str) -> None:
        _, size, _ = self._data.pop(key)
        self._bytes -= size
