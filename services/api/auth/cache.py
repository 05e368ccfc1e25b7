"""Principals without a database trip: API key records kept in the API process (docs/performance.md).

The cache holds the stored record of a key (its hash, namespaces, admin flag, revoked flag), never the
presented key: every request still hashes what it presents and compares it in constant time
(`shared.api_keys.key_matches`), hit or miss. Unknown prefixes are never cached, so a key created by another
process works at once. Revocations by this process invalidate at once, those of other processes arrive
with the change feed (`apply`), or within the TTL when no feed is followed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from modelreg.services.api.caching.bounded import read_through
from modelreg.services.api.caching.followed import FollowedCache
from modelreg.services.keys.ports import KeyRecords
from modelreg.shared.changes import ChangedCollection, RegistryChange
from modelreg.shared.documents import ApiKeyDocument


class KeyRecordCache(FollowedCache[str, ApiKeyDocument]):
    """Key records by prefix; one TTL, followed by the change feed or not (revocations must take effect
    within it even while the feed delivers)."""

    def __init__(
        self, *, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(ttl_s=ttl_s, feed_ttl_s=ttl_s, max_entries=max_entries, clock=clock)

    def invalidate(self, prefix: str) -> None:
        self.entries.invalidate(prefix)

    def apply(self, change: RegistryChange) -> None:
        """A committed change of `api_keys` invalidates the key it changed."""
        if change.collection != ChangedCollection.API_KEYS:
            return
        prefix = (change.document or {}).get("prefix")
        if isinstance(prefix, str):
            self.invalidate(prefix)
            return
        # A delete carries only the record's _id.
        found = self.entries.invalidate_where(lambda _, record: str(record.id) == change.document_id)
        if not found:
            # Not cached, or cached under an _id we cannot match: refuse values being loaded right now too.
            self.entries.clear()


class CachingKeyStore:
    """The key records (`KeyRecords`) with lookups by prefix answered from `KeyRecordCache`."""

    def __init__(self, store: KeyRecords, cache: KeyRecordCache) -> None:
        self.store = store
        self.cache = cache

    async def insert(
        self, prefix: str, key_hash: str, namespaces: Sequence[str], admin: bool
    ) -> ApiKeyDocument:
        return await self.store.insert(prefix, key_hash, namespaces, admin)

    async def find(self, prefix: str) -> ApiKeyDocument | None:
        return await read_through(self.cache, prefix, lambda: self.store.find(prefix))

    async def list(self) -> list[ApiKeyDocument]:
        return await self.store.list()

    async def revoke(self, prefix: str) -> bool:
        try:
            return await self.store.revoke(prefix)
        finally:
            self.cache.invalidate(prefix)
