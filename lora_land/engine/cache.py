"""A byte-budgeted LRU cache with pinning: one tier of the adapter cache.

Modelled on vLLM's `LoRALRUCache`: a capacity (here in **bytes**, not a count of adapters, so
a rank-64 adapter costs eight times a rank-8 one), an idempotent `add`, `touch` on use, `pin`
for featured adapters and for adapters a running batch holds, and an eviction hook that lets
the owner unload what falls out. Values are opaque: the cache never looks inside them.

This module knows nothing about torch, files or tiers; `store.py` stacks two of these.
It is not thread-safe by itself: the store calls it under its own lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

EvictHook = Callable[[Hashable, Any], None]


class CacheFullError(RuntimeError):
    """No room: everything that could be evicted is pinned (or the item exceeds the budget)."""


@dataclass
class _Entry:
    value: Any
    nbytes: int
    pins: int = 0


class LruCache:
    """Least-recently-used entries leave first when `add` needs room; pinned ones never do."""

    def __init__(self, capacity_bytes: int, on_evict: EvictHook | None = None) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._on_evict = on_evict
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()  # oldest first
        self.bytes_used = 0
        self.evictions = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def lru_order(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        return list(self._entries)

    def get(self, key: Hashable) -> Any | None:
        """The value (marking it most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.value

    def touch(self, key: Hashable) -> None:
        if key in self._entries:
            self._entries.move_to_end(key)

    def add(self, key: Hashable, value: Any, nbytes: int) -> list[Hashable]:
        """Insert `key` (a no-op but `touch` if present); returns the keys evicted for room.

        Raises `CacheFullError` when the item is larger than the whole budget or when the
        room it needs is held by pinned entries; nothing is evicted in that case.
        """
        if key in self._entries:
            self.touch(key)
            return []
        if nbytes > self.capacity_bytes:
            raise CacheFullError(
                f"item of {nbytes} bytes exceeds the cache budget of {self.capacity_bytes} bytes"
            )
        victims = self._plan_eviction(nbytes)
        for victim in victims:
            self._evict(victim)
        self._entries[key] = _Entry(value=value, nbytes=nbytes)
        self.bytes_used += nbytes
        return victims

    def _plan_eviction(self, nbytes: int) -> list[Hashable]:
        need = self.bytes_used + nbytes - self.capacity_bytes
        victims: list[Hashable] = []
        for key, entry in self._entries.items():
            if need <= 0:
                break
            if entry.pins == 0:
                victims.append(key)
                need -= entry.nbytes
        if need > 0:
            pinned = self.bytes_used - sum(self._entries[k].nbytes for k in victims)
            raise CacheFullError(
                f"need {nbytes} bytes but {pinned} of {self.capacity_bytes} bytes are pinned"
            )
        return victims

    def _evict(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self.bytes_used -= entry.nbytes
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key, entry.value)

    def remove(self, key: Hashable) -> bool:
        """Drop `key` even if pinned (an operator action, not an eviction). True if present."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.bytes_used -= entry.nbytes
        return True

    def pin(self, key: Hashable) -> None:
        """Protect `key` from eviction; pins count, so each `pin` needs one `unpin`."""
        entry = self._entries.get(key)
        if entry is None:
            raise KeyError(f"cannot pin {key!r}: not in the cache")
        entry.pins += 1

    def unpin(self, key: Hashable) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.pins > 0:
            entry.pins -= 1

    def is_pinned(self, key: Hashable) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.pins > 0
