"""MongoDB through Beanie: connecting, and the queries the services need."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from beanie import init_beanie
from pymongo import AsyncMongoClient, UpdateOne

from shared.contracts import DeploymentEvent, DeploymentStatus, ModelDeploymentInfo, ModelKey
from shared.deployment_rules import ObservedDeployment, status_for_legacy
from shared.documents import DOCUMENT_MODELS, CustomModelDocument, ModelDetails
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


def observed_from_details(details: ModelDetails) -> ObservedDeployment:
    info = details.deployment_info
    return ObservedDeployment(
        deployed=details.deployed,
        deployment_info=msgspec.convert(info.model_dump(), ModelDeploymentInfo) if info else None,
        status=details.deployment_status or status_for_legacy(details.deployed),
        message=details.deployment_message,
        last_event_sequence=details.last_event_sequence,
        observed_at=details.observed_at,
    )


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


def _to_document(value: msgspec.Struct | None) -> dict[str, Any] | None:
    return None if value is None else msgspec.to_builtins(value, builtin_types=(datetime,))


class ModelStore:
    """Queries on `custom_models` used by the API and the worker."""

    def __init__(self, history_limit: int = 500) -> None:
        self.history_limit = history_limit

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        return await CustomModelDocument.find_one(key_filter(key), projection_model=ModelDetails)

    async def load_observed(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]:
        keys = list(keys)
        if not keys:
            return {}
        found = CustomModelDocument.find(
            {"$or": [key_filter(k) for k in keys]}, projection_model=ModelDetails
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
                            "deployment_info": _to_document(after.deployment_info),
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
        collection = CustomModelDocument.get_pymongo_collection()
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

    async def keys_observed_on_serve(self) -> list[ModelKey]:
        """Models whose observed state says Ray Serve has (or is making) an application for them."""
        live = [str(s) for s in OBSERVED_ON_SERVE]
        cursor = CustomModelDocument.get_pymongo_collection().find(
            {"$or": [{"deployed": True}, {"deployment_status": {"$in": live}}]},
            {"_id": 0, "namespace_id": 1, "model_id": 1},
        )
        return [ModelKey(d["namespace_id"], d["model_id"]) async for d in cursor]
