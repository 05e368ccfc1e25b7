"""The `model_aliases` collection: aliases written by compare-and-set on their revision, read per model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from modelreg.shared.adapters.mongo.mapping import key_filter
from modelreg.shared.alias_rules import AliasHistoryKind, AliasState, aliases_by_model
from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import AliasDocument, HistoryEntry, ModelDocument

_FIELDS = (
    "namespace_id",
    "name",
    "alias",
    "model_id",
    "previous_model_id",
    "updated_at",
    "updated_by",
    "revision",
)


def _state(document: AliasDocument) -> AliasState:
    return AliasState(**{field: getattr(document, field) for field in _FIELDS})


def _where(namespace_id: str, name: str, alias: str) -> dict[str, Any]:
    return {"namespace_id": namespace_id, "name": name, "alias": alias}


class AliasStore:
    """Aliases of model names; every write is a compare-and-set (insert when new, revision otherwise)."""

    def __init__(self, history_limit: int = 500) -> None:
        self.history_limit = history_limit

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None:
        found = await AliasDocument.find_one(_where(namespace_id, name, alias))
        return None if found is None else _state(found)

    async def in_namespace(self, namespace_id: str) -> list[AliasState]:
        """Every alias of the namespace (what the API caches per namespace)."""
        return [_state(document) async for document in AliasDocument.find({"namespace_id": namespace_id})]

    async def list_for_name(self, namespace_id: str, name: str) -> list[AliasState]:
        found = AliasDocument.find({"namespace_id": namespace_id, "name": name}).sort("alias")
        return [_state(document) async for document in found]

    async def write(self, before: AliasState | None, after: AliasState) -> bool:
        """Store `after` if the alias is still as `before` was read; False when another write came first."""
        if before is None:
            document = AliasDocument(**{field: getattr(after, field) for field in _FIELDS})
            try:
                await document.insert()
            except DuplicateKeyError:
                return False
            return True
        result = await AliasDocument.find_one(
            {**_where(before.namespace_id, before.name, before.alias), "revision": before.revision}
        ).update(
            {
                "$set": {
                    "model_id": after.model_id,
                    "previous_model_id": after.previous_model_id,
                    "updated_at": after.updated_at,
                    "updated_by": after.updated_by,
                    "revision": after.revision,
                }
            }
        )
        return isinstance(result, UpdateResult) and result.matched_count == 1

    async def remove(self, before: AliasState) -> bool:
        """Delete the alias if it is still as read; False when it changed or is gone."""
        result = await AliasDocument.find_one(
            {**_where(before.namespace_id, before.name, before.alias), "revision": before.revision}
        ).delete()
        return result is not None and result.deleted_count == 1

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]:
        """model_id → its aliases (sorted), for the models that have any."""
        if not model_ids:
            return {}
        found = AliasDocument.find({"namespace_id": namespace_id, "model_id": {"$in": list(model_ids)}})
        return aliases_by_model([_state(document) async for document in found])

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]:
        """The ids of the namespace's models one of `aliases` (of any name) points at."""
        found = AliasDocument.find({"namespace_id": namespace_id, "alias": {"$in": list(aliases)}})
        return sorted({document.model_id async for document in found})

    async def release_model(self, key: ModelKey) -> list[AliasState]:
        """A deleted model's aliases go, and no alias keeps it as rollback target; returns those removed."""
        where = {"namespace_id": key.namespace_id, "model_id": key.model_id}
        removed = [_state(document) async for document in AliasDocument.find(where)]
        await AliasDocument.find(where).delete()
        await AliasDocument.find(
            {"namespace_id": key.namespace_id, "previous_model_id": key.model_id}
        ).update({"$set": {"previous_model_id": None}, "$inc": {"revision": 1}})
        return removed

    async def add_history(
        self, key: ModelKey, kind: AliasHistoryKind, message: str, event_id: str, now: datetime
    ) -> None:
        """One entry in the model's history (the list the deployment events go to; the sequence guard is
        untouched, so the worker's writes never conflict with it)."""
        entry = HistoryEntry(
            event_id=event_id,
            event_type=str(kind),
            sequence=int(now.timestamp() * 1_000_000),
            occurred_at=now,
            applied_at=now,
            message=message,
        )
        await ModelDocument.find_one(key_filter(key)).update(
            {"$push": {"deployment_history": {"$each": [entry.model_dump()], "$slice": -self.history_limit}}}
        )
