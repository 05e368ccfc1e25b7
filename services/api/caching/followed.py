"""A `BoundedCache` kept current from the change feed: the part every API cache shares.

Entries live `ttl_s` while no change feed is followed and `feed_ttl_s` while one is; when the feed stops,
what it may have missed is forgotten. Each cache says what a change of the feed invalidates (`apply`) and
what an entry weighs against `max_bytes` (`measure`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from modelreg.services.api.caching.bounded import BoundedCache
from modelreg.shared.changes import RegistryChange

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FollowedCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl_s: float,
        feed_ttl_s: float,
        max_entries: int,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.feed_ttl_s = feed_ttl_s
        self.entries: BoundedCache[K, V] = BoundedCache(
            ttl_s=ttl_s, max_entries=max_entries, max_bytes=max_bytes, clock=clock, size_of=self.measure
        )

    def measure(self, value: V) -> int:
        """The bytes `value` counts for against `max_bytes` (none unless a cache says so)."""
        return 0

    @property
    def enabled(self) -> bool:
        return self.entries.enabled

    def get(self, key: K) -> V | None:
        return self.entries.get(key) if self.entries.enabled else None

    def begin(self) -> int:
        return self.entries.begin()

    def put(self, key: K, value: V, ticket: int) -> None:
        self.entries.put(key, value, ticket)

    def following(self, live: bool) -> None:
        """The change feed started (True) or stopped (False) delivering: which TTL new entries get.

        When it stops, what it may have missed is forgotten: entries are only trusted for the short TTL.
        """
        self.entries.ttl_s = self.feed_ttl_s if live and self.ttl_s > 0 else self.ttl_s
        if not live:
            self.entries.clear()

    def apply(self, change: RegistryChange) -> None:
        """What a committed change invalidates."""
        raise NotImplementedError
