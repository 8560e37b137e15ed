"""A small bounded memo of recent decodes, keyed by the exact input bytes.

One GBCS message is decoded several times on its way through the rig (DCC, comms hub,
device, DCC again, the User's tooling); the decoded values are deep-frozen dataclasses,
so handing the same result to every caller is indistinguishable from decoding again.
Failures are never remembered: bad input raises afresh each time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

#: Enough for every message in flight on a busy rig; old entries go first.
DEFAULT_CAPACITY = 512


class RecentDecodes(Generic[V]):
    """Insertion-ordered dict with a size bound (the oldest entry is dropped first)."""

    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self._capacity = capacity
        self._items: dict[Hashable, V] = {}

    def get(self, key: Hashable) -> V | None:
        return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        items = self._items
        if len(items) >= self._capacity:
            with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # a race
                del items[next(iter(items))]
        items[key] = value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
