"""MongoDB through Beanie: connecting, and the queries the services need."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from beanie import init_beanie
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.contracts import DeploymentEvent, DeploymentStatus, ModelKey
from shared.conversions import deployment_info_document, observed_from_details
from shared.deployment_rules import DesiredState, ObservedDeployment
from shared.documents import (
    DOCUMENT_MODELS,
    ApiKeyDocument,
    HistoryEntry,
    ModelDetails,
    ModelDocument,
)
from shared.retry import retry_with_backoff
from shared.settings import Settings


async def connect(settings: Settings, *, server_selection_timeout_ms: int = 5_000) -> AsyncMongoClient:
    """A tz-aware client whose writes are journaled (acknowledged writes survive a crash) + Beanie set up."""
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        journal=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
    )
    await init_beanie(database=client[settings.mongodb_database], document_models=DOCUMENT_MODELS)
    return client


async def connect_when_available(
    settings: Settings, stop: asyncio.Event, max_backoff_s: float = 10.0
) -> AsyncMongoClient:
    """connect(), retried with backoff while MongoDB is unreachable; raises Stopping once `stop` is set."""
    return await retry_with_backoff(
        lambda: connect(settings),
        operation="connect_mongodb",
        stop=stop,
        retry_on=(PyMongoError,),
        max_backoff_s=max_backoff_s,
    )


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")


# Statuses that mean a Serve application exists or is being made or removed.
OBSERVED_ON_SERVE = (
    DeploymentStatus.PENDING,
    DeploymentStatus.DEPLOYED,
    DeploymentStatus.UNHEALTHY,
    DeploymentStatus.DELETING,
)


def key_filter(key: ModelKey) -> dict[str, str]:
    return {"namespace_id": key.namespace_id, "model_id": key.model_id}


class ObservedChange(msgspec.Struct, frozen=True):
    """One model's conditional write: `after` replaces `before`, recording the events that led there."""

    key: ModelKey
    before: ObservedDeployment
    after: ObservedDeployment
    applied: Sequence[DeploymentEvent]


def _history_entry(event: DeploymentEvent, applied_at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "event_type": str(event.event_type),
        "sequence": event.sequence,
        "occurred_at": event.occurred_at,
        "applied_at": applied_at,
        "endpoint": event.endpoint,
        "ray_deployment_name": event.ray_deployment_name,
        "message": event.message,
    }


class DuplicateModelError(Exception):
    """Another model already has this namespace, name and version."""


class ModelFilter(msgspec.Struct, kw_only=True, frozen=True):
    deployed: bool | None = None
    task_type: str | None = None
    model_format: str | None = None
    name: str | None = None


# Listing orders; model_id breaks ties so pages never overlap or skip.
LIST_SORTS: dict[str, list[tuple[str, int]]] = {
    "-created_at": [("created_at", DESCENDING), ("model_id", ASCENDING)],
    "created_at": [("created_at", ASCENDING), ("model_id", ASCENDING)],
    "name": [("name", ASCENDING), ("version", ASCENDING), ("model_id", ASCENDING)],
    "-name": [("name", DESCENDING), ("version", DESCENDING), ("model_id", ASCENDING)],
}


class ModelStore:
    """Queries on `custom_models` used by the API and the worker."""

    def __init__(self, history_limit: int = 500) -> None:
        self.history_limit = history_limit

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        return await ModelDocument.find_one(key_filter(key), projection_model=ModelDetails)

    async def load_observed(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]:
        keys = list(keys)
        if not keys:
            return {}
        # One $in per namespace rather than an $or of (namespace, model) pairs: each is a single scan of the
        # unique (namespace_id, model_id) index, where an $or is planned clause by clause.
        by_namespace: dict[str, list[str]] = {}
        for key in keys:
            by_namespace.setdefault(key.namespace_id, []).append(key.model_id)
        clauses = [{"namespace_id": ns, "model_id": {"$in": ids}} for ns, ids in by_namespace.items()]
        found = ModelDocument.find(
            clauses[0] if len(clauses) == 1 else {"$or": clauses}, projection_model=ModelDetails
        )
        return {ModelKey(d.namespace_id, d.model_id): observed_from_details(d) async for d in found}

    async def write_observed(self, changes: Sequence[ObservedChange], now: datetime) -> set[ModelKey]:
        """Apply every change in one bulk write; returns the keys whose document moved meanwhile.

        Each update is guarded by the sequence it was computed from (compare-and-set), so a concurrent
        writer can never be overwritten by a decision made on stale data.
        """
        if not changes:
            return set()
        operations = []
        for change in changes:
            after = change.after
            operations.append(
                UpdateOne(
                    {**key_filter(change.key), "last_event_sequence": change.before.last_event_sequence},
                    {
                        "$set": {
                            "deployed": after.deployed,
                            "deployment_info": deployment_info_document(after.deployment_info),
                            "deployment_status": str(after.status),
                            "deployment_message": after.message,
                            "last_event_sequence": after.last_event_sequence,
                            "observed_at": after.observed_at,
                            "updated_at": now,
                        },
                        "$push": {
                            "deployment_history": {
                                "$each": [_history_entry(e, now) for e in change.applied],
                                "$slice": -self.history_limit,
                            }
                        },
                    },
                )
            )
        collection = ModelDocument.get_pymongo_collection()
        result = await collection.bulk_write(operations, ordered=False)
        if result.matched_count == len(changes):
            return set()
        # Some guards failed: find which by re-reading the sequences we expected to replace.
        current = await self.load_observed(c.key for c in changes)
        return {
            c.key
            for c in changes
            if c.key in current and current[c.key].last_event_sequence != c.after.last_event_sequence
        }

    async def reset_event_guard(self, key: ModelKey, now: datetime) -> bool:
        """Forget the model's last applied sequence and event time; False when there is no such model.

        The way out for a model frozen by a bogus event: the next event applies, whatever it carries.
        """
        result = await ModelDocument.get_pymongo_collection().update_one(
            key_filter(key),
            {"$set": {"last_event_sequence": None, "observed_at": None, "updated_at": now}},
        )
        return result.matched_count == 1

    # --- registry writes and reads of the API -------------------------------------------------------------

    async def insert_model(self, details: ModelDetails) -> None:
        """Insert a new model; the unique (namespace, name, version) index decides between racing uploads."""
        document = ModelDocument(**details.model_dump())
        try:
            await document.insert()
        except DuplicateKeyError as exc:
            if "name" in ((exc.details or {}).get("keyPattern") or {}):
                raise DuplicateModelError(f"{details.name} {details.version}") from None
            raise

    async def find_name_version(self, namespace_id: str, name: str, version: str) -> str | None:
        """The model_id registered under this name and version, if any."""
        found = await ModelDocument.get_pymongo_collection().find_one(
            {"namespace_id": namespace_id, "name": name, "version": version}, {"model_id": 1}
        )
        return found["model_id"] if found else None

    async def list_models(
        self, namespace_id: str, where: ModelFilter, sort: str, offset: int, limit: int
    ) -> tuple[int, list[ModelDetails]]:
        """One page of a namespace's models (history left out) and the number of models matching."""
        query: dict[str, Any] = {"namespace_id": namespace_id}
        for field in ("deployed", "task_type", "model_format", "name"):
            value = getattr(where, field)
            if value is not None:
                query[field] = value
        total = await ModelDocument.find(query).count()
        page = (
            await ModelDocument.find(query, projection_model=ModelDetails)
            .sort(LIST_SORTS[sort])
            .skip(offset)
            .limit(limit)
            .to_list()
        )
        return total, page

    async def history_page(
        self, key: ModelKey, offset: int, limit: int
    ) -> tuple[int, list[HistoryEntry]] | None:
        """Applied events of a model, newest first, and how many there are; None when the model is unknown.

        Only the requested slice of the embedded history leaves the database.
        """
        history = {"$ifNull": ["$deployment_history", []]}
        pipeline = [
            {"$match": key_filter(key)},
            {
                "$project": {
                    "_id": 0,
                    "total": {"$size": history},
                    "page": {"$slice": [{"$reverseArray": history}, offset, limit]},
                }
            },
        ]
        cursor = await ModelDocument.get_pymongo_collection().aggregate(pipeline)
        rows = await cursor.to_list(1)
        if not rows:
            return None
        return rows[0]["total"], [HistoryEntry.model_validate(entry) for entry in rows[0]["page"]]

    async def set_desired(
        self,
        key: ModelKey,
        desired: DesiredState | None,
        desired_at: datetime | None,
        *,
        expected_desired_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Record what the user asked for, unless another request changed it since (compare-and-set).

        The only deployment field the API writes; the observed state belongs to the worker.
        """
        result = await ModelDocument.get_pymongo_collection().update_one(
            {**key_filter(key), "desired_at": expected_desired_at},
            {
                "$set": {
                    "desired_state": None if desired is None else str(desired),
                    "desired_at": desired_at,
                    "updated_at": now,
                }
            },
        )
        return result.matched_count == 1

    async def delete_model(self, key: ModelKey) -> bool:
        result = await ModelDocument.get_pymongo_collection().delete_one(key_filter(key))
        return result.deleted_count == 1

    async def keys_observed_on_serve(self) -> list[ModelKey]:
        """Models whose observed state says Ray Serve has (or is making) an application for them."""
        live = [str(s) for s in OBSERVED_ON_SERVE]
        cursor = ModelDocument.get_pymongo_collection().find(
            {"$or": [{"deployed": True}, {"deployment_status": {"$in": live}}]},
            {"_id": 0, "namespace_id": 1, "model_id": 1},
        )
        return [ModelKey(d["namespace_id"], d["model_id"]) async for d in cursor]


class DuplicateKeyPrefixError(Exception):
    """Another key already uses this prefix."""


class ApiKeyStore:
    """The `api_keys` collection: records of keys, looked up by their clear prefix."""

    async def insert(
        self, prefix: str, key_hash: str, namespaces: Sequence[str], admin: bool
    ) -> ApiKeyDocument:
        document = ApiKeyDocument(
            prefix=prefix, key_hash=key_hash, namespaces=sorted(set(namespaces)), admin=admin
        )
        try:
            return await document.insert()
        except DuplicateKeyError:
            raise DuplicateKeyPrefixError(prefix) from None

    async def find(self, prefix: str) -> ApiKeyDocument | None:
        return await ApiKeyDocument.find_one({"prefix": prefix})

    async def list(self) -> list[ApiKeyDocument]:
        return await ApiKeyDocument.find_all().sort([("created_at", ASCENDING)]).to_list()

    async def revoke(self, prefix: str) -> bool:
        result = await ApiKeyDocument.get_pymongo_collection().update_one(
            {"prefix": prefix}, {"$set": {"revoked": True}}
        )
        return result.matched_count == 1
