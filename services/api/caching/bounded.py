"""A bounded, time-limited map: the decisions of the API's caches, pure (the clock is passed in).

Entries live at most `ttl_s` (0 turns the cache off), the least recently used go first once `max_entries`
or `max_bytes` is exceeded. A value read from the database before an invalidation of its key must not be
stored after it (it would hide the write until the TTL), so loads take a ticket first (`begin`) and `put`
refuses a ticket older than the key's last invalidation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class CacheStats:
    __slots__ = ("hits", "misses", "evictions", "invalidations", "refused")

    def __init__(self) -> None:
        self.hits = self.misses = self.evictions = self.invalidations = self.refused = 0


class BoundedCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float],
        max_bytes: int | None = None,
        size_of: Callable[[V], int] = lambda _: 0,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.size_of = size_of
        self.stats = CacheStats()
        # key → (value, size, expires at); order is recency of use, oldest first.
        self._entries: OrderedDict[K, tuple[V, int, float]] = OrderedDict()
        self._bytes = 0
        # Tickets: a counter bumped by every invalidation; keys invalidated recently, with the counter then.
        self._generation = 0
        self._invalidated: OrderedDict[K, int] = OrderedDict()
        # Tickets at or below this are refused for every key (a clear, or invalidations forgotten above).
        self._floor = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        value, _, expires_at = entry
        if self.clock() >= expires_at:
            self._remove(key)
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return value

    def peek(self, key: K) -> V | None:
        """`key`'s value, expired or not, without counting a use."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def begin(self) -> int:
        """A ticket to take before reading the value from its source, for `put`."""
        return self._generation

    def put(self, key: K, value: V, ticket: int) -> bool:
        """Store `value` (read after `begin` returned `ticket`); False when refused or too large."""
        if not self.enabled:
            return False
        if ticket < self._floor or ticket < self._invalidated.get(key, -1):
            self.stats.refused += 1
            return False
        size = self.size_of(value)
        if self.max_bytes is not None and size > self.max_bytes:
            return False
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (value, size, self.clock() + self.ttl_s)
        self._bytes += size
        while len(self._entries) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.stats.evictions += 1
        return True

    def invalidate(self, key: K) -> None:
        """Forget `key`, and refuse values of it read before now."""
        self._generation += 1
        self._remove(key)
        self._invalidated.pop(key, None)
        self._invalidated[key] = self._generation
        self.stats.invalidations += 1
        # Remembering one invalidation per entry the cache may hold is plenty: loads are short. What is
        # forgotten raises the floor, which refuses more than needed, never less.
        while len(self._invalidated) > self.max_entries:
            _, generation = self._invalidated.popitem(last=False)
            self._floor = max(self._floor, generation)

    def invalidate_where(self, matches: Callable[[K, V], bool]) -> int:
        """Invalidate every entry for which `matches(key, value)`; returns how many."""
        found = [key for key, (value, _, _) in self._entries.items() if matches(key, value)]
        for key in found:
            self.invalidate(key)
        return len(found)

    def clear(self) -> None:
        """Forget everything, and refuse every value read before now."""
        self._generation += 1
        self._floor = self._generation
        self._entries.clear()
        self._invalidated.clear()
        self._bytes = 0

    def _remove(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]


KC = TypeVar("KC", contravariant=True)
VC = TypeVar("VC")


class TicketedCache(Protocol[KC, VC]):
    """What `read_through` needs of a cache (the API's caches all wrap a `BoundedCache`)."""

    def get(self, key: KC, /) -> VC | None: ...

    def begin(self) -> int: ...

    def put(self, key: KC, value: VC, ticket: int, /) -> object: ...


async def read_through(
    cache: TicketedCache[K, V], key: K, load: Callable[[], Awaitable[V | None]]
) -> V | None:
    """`key`'s value from `cache`, else from `load()`, stored unless missing (a miss is never cached: what
    appears must be seen at once) or invalidated while it loaded (the ticket taken before loading)."""
    cached = cache.get(key)
    if cached is not None:
        return cached
    ticket = cache.begin()
    value = await load()
    if value is not None:
        cache.put(key, value, ticket)
    return value
