"""The `model_tombstones` collection: keys of deleted models, kept for a while (TTL index on expires_at)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import TombstoneDocument


class TombstoneStore:
    async def put(self, key: ModelKey, deleted_at: datetime, expires_at: datetime) -> None:
        await TombstoneDocument.get_pymongo_collection().update_one(
            {"namespace_id": key.namespace_id, "model_id": key.model_id},
            {"$set": {"deleted_at": deleted_at, "expires_at": expires_at}},
            upsert=True,
        )

    async def expiries(self, keys: Iterable[ModelKey]) -> dict[ModelKey, datetime]:
        """When each tombstoned key's tombstone expires (keys without one are left out)."""
        by_namespace: dict[str, list[str]] = {}
        for key in keys:
            by_namespace.setdefault(key.namespace_id, []).append(key.model_id)
        if not by_namespace:
            return {}
        clauses = [{"namespace_id": ns, "model_id": {"$in": ids}} for ns, ids in by_namespace.items()]
        found = TombstoneDocument.find(clauses[0] if len(clauses) == 1 else {"$or": clauses})
        return {ModelKey(d.namespace_id, d.model_id): d.expires_at async for d in found}
