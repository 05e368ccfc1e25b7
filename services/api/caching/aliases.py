"""A namespace's aliases answered from memory: the model views' `aliases` and the inference route's alias
resolution, without a database trip per request (docs/performance.md).

An entry holds every alias of one namespace, loaded in one query the first time the namespace is read.
Alias writes of this process invalidate it once done (`InvalidatingAliasStore`: read-your-writes), those of
other processes arrive with the change feed (`apply`), or within the TTL when no feed is followed. A write to
a model an alias points at (its delete takes the aliases with it) invalidates the namespace too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from modelreg.services.api.caching.bounded import read_through
from modelreg.services.api.caching.followed import FollowedCache
from modelreg.shared.alias_rules import AliasHistoryKind, AliasState, aliases_by_model
from modelreg.shared.changes import ChangedCollection, RegistryChange
from modelreg.shared.contracts import ModelKey

# Bookkeeping of one alias (its state, two map slots) for the byte bound.
ALIAS_ENTRY_BYTES = 400


class NamespaceAliases(msgspec.Struct, frozen=True):
    """Every alias of a namespace, by (name, alias) and by the model it points at."""

    by_name: dict[tuple[str, str], AliasState]
    by_model: dict[str, list[str]]
    # Models an alias points at or keeps as its rollback target: writes to them invalidate the entry.
    referenced: frozenset[str]

    @classmethod
    def of(cls, states: Sequence[AliasState]) -> NamespaceAliases:
        return cls(
            by_name={(s.name, s.alias): s for s in states},
            by_model=aliases_by_model(list(states)),
            referenced=frozenset(
                model_id for s in states for model_id in (s.model_id, s.previous_model_id) if model_id
            ),
        )


class NamespaceAliasCache(FollowedCache[str, NamespaceAliases]):
    """`NamespaceAliases` by namespace."""

    def measure(self, value: NamespaceAliases) -> int:
        return (len(value.by_name) + 1) * ALIAS_ENTRY_BYTES

    def invalidate_namespace(self, namespace_id: str) -> None:
        self.entries.invalidate(namespace_id)

    def invalidate(self, key: ModelKey) -> None:
        """A model was written: its namespace's aliases go when one of them refers to it (a delete takes
        them with the model); a load under way is refused only then too."""
        cached = self.entries.peek(key.namespace_id)
        if cached is None or key.model_id in cached.referenced:
            self.entries.invalidate(key.namespace_id)

    def apply(self, change: RegistryChange) -> None:
        """A committed change of `model_aliases` invalidates its namespace's aliases."""
        if change.collection != ChangedCollection.ALIASES:
            return
        if change.namespace_id is None:
            self.entries.clear()
        else:
            self.entries.invalidate(change.namespace_id)


class NamespaceAliasSource(Protocol):
    """`shared.adapters.mongo.AliasStore`: the reads the cache answers, and the one query it loads by."""

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None: ...

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]: ...

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]: ...

    async def in_namespace(self, namespace_id: str) -> list[AliasState]: ...


class CachedAliasIndex:
    """The alias reads of the model views (`AliasIndex`) and of the inference route (`AliasLookup`) from
    `NamespaceAliasCache`; straight from the store while the cache is off."""

    def __init__(self, store: NamespaceAliasSource, cache: NamespaceAliasCache) -> None:
        self.store = store
        self.cache = cache

    async def _namespace(self, namespace_id: str) -> NamespaceAliases | None:
        if not self.cache.enabled:
            return None

        async def load() -> NamespaceAliases:
            return NamespaceAliases.of(await self.store.in_namespace(namespace_id))

        return await read_through(self.cache, namespace_id, load)

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None:
        aliases = await self._namespace(namespace_id)
        if aliases is None:
            return await self.store.get(namespace_id, name, alias)
        return aliases.by_name.get((name, alias))

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]:
        if not model_ids:
            return {}
        aliases = await self._namespace(namespace_id)
        if aliases is None:
            return await self.store.aliases_of(namespace_id, model_ids)
        return {m: aliases.by_model[m] for m in model_ids if m in aliases.by_model}

    async def models_with_aliases(self, namespace_id: str, wanted: Sequence[str]) -> list[str]:
        aliases = await self._namespace(namespace_id)
        if aliases is None:
            return await self.store.models_with_aliases(namespace_id, wanted)
        return sorted({s.model_id for (_, alias), s in aliases.by_name.items() if alias in wanted})


class AliasWrites(Protocol):
    """`shared.adapters.mongo.AliasStore` as the alias service uses it (`AliasRepository`)."""

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None: ...

    async def list_for_name(self, namespace_id: str, name: str) -> list[AliasState]: ...

    async def write(self, before: AliasState | None, after: AliasState) -> bool: ...

    async def remove(self, before: AliasState) -> bool: ...

    async def add_history(
        self, key: ModelKey, kind: AliasHistoryKind, message: str, event_id: str, now: datetime
    ) -> None: ...

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]: ...

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]: ...


class InvalidatingAliasStore:
    """The alias store for this process's writers: reads go to the database (a compare-and-set must start
    from the stored revision), and every write invalidates its namespace's cached aliases once done.

    Every write method of `AliasRepository` must be here (tests/unit/test_alias_cache.py checks it).
    """

    def __init__(self, store: AliasWrites, cache: NamespaceAliasCache) -> None:
        self.store = store
        self.cache = cache

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None:
        return await self.store.get(namespace_id, name, alias)

    async def list_for_name(self, namespace_id: str, name: str) -> list[AliasState]:
        return await self.store.list_for_name(namespace_id, name)

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self.store.aliases_of(namespace_id, model_ids)

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]:
        return await self.store.models_with_aliases(namespace_id, aliases)

    async def write(self, before: AliasState | None, after: AliasState) -> bool:
        try:
            return await self.store.write(before, after)
        finally:
            self.cache.invalidate_namespace(after.namespace_id)

    async def remove(self, before: AliasState) -> bool:
        try:
            return await self.store.remove(before)
        finally:
            self.cache.invalidate_namespace(before.namespace_id)

    async def add_history(
        self, key: ModelKey, kind: AliasHistoryKind, message: str, event_id: str, now: datetime
    ) -> None:
        await self.store.add_history(key, kind, message, event_id, now)
