"""Models answered from memory: GET details (the encoded body and its ETag per model), the model records
the inference route resolves endpoints from, and the store wrapper that invalidates both on every write
this process makes (read-your-writes).

Writes of other processes (the worker's observed state, the operator commands) reach the cache through the
change feed (`apply`), or not at all: then the TTL bounds how stale an answer can be (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

import msgspec

from modelreg.services.api.caching.bounded import read_through
from modelreg.services.api.caching.followed import FollowedCache
from modelreg.services.api.models.ports import ModelRepository
from modelreg.shared.adapters.mongo import ModelFilter
from modelreg.shared.changes import ChangedCollection, ChangeOperation, RegistryChange
from modelreg.shared.contracts import ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import HistoryEntry, ModelDetails
from modelreg.shared.placement import Placement

# Bookkeeping of one entry (key, tuple, ordering) on top of its body and ETag, for the byte bound.
ENTRY_OVERHEAD_BYTES = 300


class EncodedDetails(msgspec.Struct, frozen=True):
    body: bytes
    etag: str


def entry_bytes(entry: EncodedDetails) -> int:
    return len(entry.body) + len(entry.etag) + ENTRY_OVERHEAD_BYTES


V = TypeVar("V")


class ModelCache(FollowedCache[ModelKey, V]):
    """A value per model."""

    def invalidate(self, key: ModelKey) -> None:
        self.entries.invalidate(key)

    def apply(self, change: RegistryChange) -> None:
        """A committed change of `custom_models` invalidates the model it changed."""
        if change.collection != ChangedCollection.MODELS:
            return
        document = change.document or {}
        namespace_id = document.get("namespace_id", change.namespace_id)
        model_id = document.get("model_id")
        if isinstance(namespace_id, str) and isinstance(model_id, str):
            self.invalidate(ModelKey(namespace_id, model_id))
        elif change.operation == ChangeOperation.DELETE and namespace_id is not None:
            # A delete carries only the document's _id: every model of its namespace goes.
            self.entries.invalidate_where(lambda key, _: key.namespace_id == namespace_id)
        else:
            self.entries.clear()


class DetailsCache(ModelCache[EncodedDetails]):
    """Encoded GET details (body and ETag) by model."""

    def measure(self, value: EncodedDetails) -> int:
        return entry_bytes(value)

    def apply(self, change: RegistryChange) -> None:
        """Details show their model's aliases: a change of `model_aliases` also invalidates every model of
        its namespace (the models it left and joined; alias moves are rare)."""
        if change.collection != ChangedCollection.ALIASES:
            super().apply(change)
        elif change.namespace_id is None:
            self.entries.clear()
        else:
            self.entries.invalidate_where(lambda key, _: key.namespace_id == change.namespace_id)


class ModelRecordCache(ModelCache[ModelDetails]):
    """Stored models (history left out) by key: what the inference route checks and forwards by."""

    def measure(self, value: ModelDetails) -> int:
        return len(value.model_dump_json()) + ENTRY_OVERHEAD_BYTES


class DetailsSource(Protocol):
    async def get_details(self, key: ModelKey) -> ModelDetails | None: ...


class CachedModelLookup:
    """`get_details` from the record cache, loading a missing model from `store` (an unknown one is not
    cached: its upload must be seen at once)."""

    def __init__(self, store: DetailsSource, cache: ModelRecordCache) -> None:
        self.store = store
        self.cache = cache

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        return await read_through(self.cache, key, lambda: self.store.get_details(key))


class KeyInvalidation(Protocol):
    def invalidate(self, key: ModelKey) -> None: ...


class InvalidatingModelRepository:
    """A `ModelRepository` whose writes invalidate the written model in every cache once they are done.

    Every write method of the port must be here (tests/unit/test_api_caches.py checks it): a write that
    bypassed the invalidation would be hidden from its own writer until the TTL.
    """

    def __init__(self, store: ModelRepository, *caches: KeyInvalidation) -> None:
        self.store = store
        self.caches = caches

    def invalidate(self, key: ModelKey) -> None:
        for cache in self.caches:
            cache.invalidate(key)

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        return await self.store.get_details(key)

    async def list_models(
        self, namespace_id: str, where: ModelFilter, sort: str, offset: int, limit: int
    ) -> tuple[int, list[ModelDetails]]:
        return await self.store.list_models(namespace_id, where, sort, offset, limit)

    async def history_page(
        self, key: ModelKey, offset: int, limit: int
    ) -> tuple[int, list[HistoryEntry]] | None:
        return await self.store.history_page(key, offset, limit)

    async def find_name_version(self, namespace_id: str, name: str, version: str) -> str | None:
        return await self.store.find_name_version(namespace_id, name, version)

    async def insert_model(self, details: ModelDetails) -> None:
        try:
            await self.store.insert_model(details)
        finally:
            self.invalidate(ModelKey(details.namespace_id, details.model_id))

    async def set_desired(
        self,
        key: ModelKey,
        desired: DesiredState | None,
        desired_at: datetime | None,
        *,
        expected_desired_at: datetime | None,
        now: datetime,
        placement: Placement | None = None,
        desired_by: str | None = None,
    ) -> bool:
        try:
            return await self.store.set_desired(
                key,
                desired,
                desired_at,
                expected_desired_at=expected_desired_at,
                now=now,
                placement=placement,
                desired_by=desired_by,
            )
        finally:
            self.invalidate(key)

    async def update_tags(
        self, key: ModelKey, to_set: Mapping[str, str], to_remove: Sequence[str], now: datetime
    ) -> ModelDetails | None:
        try:
            return await self.store.update_tags(key, to_set, to_remove, now)
        finally:
            self.invalidate(key)

    async def delete_model(self, key: ModelKey) -> bool:
        try:
            return await self.store.delete_model(key)
        finally:
            self.invalidate(key)
