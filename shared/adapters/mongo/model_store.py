"""The `custom_models` collection: the worker's guarded writes of observed state, the registry's writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from beanie import BulkWriter
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from modelreg.shared.adapters.mongo.alias_store import AliasStore
from modelreg.shared.adapters.mongo.listing import (
    LIST_SORTS,
    ModelFilter,
    history_page_pipeline,
    listing_query,
)
from modelreg.shared.adapters.mongo.mapping import key_filter, observed_from_details, observed_update
from modelreg.shared.adapters.mongo.tombstone_store import TombstoneStore
from modelreg.shared.cluster_routing import ObservedPlacement
from modelreg.shared.contracts import ModelKey
from modelreg.shared.deployment_rules import (
    OBSERVED_ON_SERVE,
    DesiredState,
    ObservedChange,
    ObservedDeployment,
    lost_writes,
)
from modelreg.shared.documents import (
    HistoryEntry,
    ModelClusterFields,
    ModelDetails,
    ModelDocument,
    ModelKeyFields,
    utc_now,
)
from modelreg.shared.placement import Placement
from modelreg.shared.tombstone_rules import tombstone_expiry


class ModelRegisteredError(Exception):
    """A unique key of the registry is taken."""


class DuplicateModelError(ModelRegisteredError):
    """Another model already has this namespace, name and version."""


class DuplicateModelIdError(ModelRegisteredError):
    """The namespace already has a model with this model_id."""


class ModelStore:
    """Queries on `custom_models` used by the API, the worker, the bridge and the operator commands.

    Compare-and-set writes filter on the model's key and the value they were computed from.
    """

    def __init__(self, history_limit: int = 500, tombstone_retention_s: float = 7 * 24 * 3600.0) -> None:
        self.history_limit = history_limit
        self.tombstone_retention_s = tombstone_retention_s

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        # The hot read: pymongo's find_one and one validation cost the API process about 0.1 ms of CPU less
        # per read than Beanie's find_one with a projection model (docs/performance.md).
        found = await ModelDocument.get_pymongo_collection().find_one(
            key_filter(key), {"deployment_history": 0}
        )
        return None if found is None else ModelDetails.model_validate(found)

    # --- the worker's observed state ----------------------------------------------------------------------

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
        bulk = BulkWriter(ordered=False, object_class=ModelDocument)
        for change in changes:
            guard = {**key_filter(change.key), "last_event_sequence": change.before.last_event_sequence}
            await ModelDocument.find_one(guard).update(
                observed_update(change, now, self.history_limit), bulk_writer=bulk
            )
        result = await bulk.commit()
        if result is not None and result.matched_count == len(changes):
            return set()
        # Some guards failed: find which by re-reading the sequences we expected to replace.
        current = await self.load_observed(c.key for c in changes)
        return lost_writes(changes, {key: observed.last_event_sequence for key, observed in current.items()})

    async def reset_event_guard(self, key: ModelKey, now: datetime) -> bool:
        """Forget the model's last applied sequence and event time; False when there is no such model.

        The way out for a model frozen by a bogus event: the next event applies, whatever it carries.
        """
        result = await ModelDocument.find_one(key_filter(key)).update(
            {
                "$set": {
                    "last_event_sequence": None,
                    "cluster_sequences": None,
                    "observed_at": None,
                    "updated_at": now,
                }
            }
        )
        return isinstance(result, UpdateResult) and result.matched_count == 1  # see ApiKeyStore.revoke

    async def keys_observed_on_serve(self) -> list[ModelKey]:
        """Models whose observed state says Ray Serve has (or is making) an application for them.

        The query form of `deployment_rules.is_observed_on_serve`.
        """
        live = sorted(str(s) for s in OBSERVED_ON_SERVE)
        found = ModelDocument.find(
            {"$or": [{"deployed": True}, {"deployment_status": {"$in": live}}]},
            projection_model=ModelKeyFields,
        )
        return [ModelKey(d.namespace_id, d.model_id) async for d in found]

    async def observed_on_serve_with_cluster(self) -> dict[ModelKey, ObservedPlacement]:
        """`keys_observed_on_serve`, each with its placement: the cluster it lives on (`cluster`), its
        deployment info's `ray_cluster_url` (whose bridge reported it last) and `desired_cluster`."""
        live = sorted(str(s) for s in OBSERVED_ON_SERVE)
        found = ModelDocument.find(
            {"$or": [{"deployed": True}, {"deployment_status": {"$in": live}}]},
            projection_model=ModelClusterFields,
        )
        return {
            ModelKey(d.namespace_id, d.model_id): ObservedPlacement(
                d.cluster,
                d.deployment_info.ray_cluster_url if d.deployment_info else None,
                d.desired_cluster,
            )
            async for d in found
        }

    # --- registry writes and reads of the API and the operator commands -----------------------------------

    async def insert_model(self, details: ModelDetails) -> None:
        """Insert a new model; the unique indexes decide between racing registrations.

        Raises DuplicateModelError (name and version taken) or DuplicateModelIdError (model_id taken).
        """
        document = ModelDocument(**details.model_dump())
        try:
            await document.insert()
        except DuplicateKeyError as exc:
            taken = (exc.details or {}).get("keyPattern") or {}
            if "name" in taken:
                raise DuplicateModelError(f"{details.name} {details.version}") from None
            if "model_id" in taken:
                raise DuplicateModelIdError(f"{details.namespace_id}/{details.model_id}") from None
            raise

    async def find_name_version(self, namespace_id: str, name: str, version: str) -> str | None:
        """The model_id registered under this name and version, if any."""
        found = await ModelDocument.find_one(
            {"namespace_id": namespace_id, "name": name, "version": version}, projection_model=ModelKeyFields
        )
        return found.model_id if found else None

    async def list_models(
        self, namespace_id: str, where: ModelFilter, sort: str, offset: int, limit: int
    ) -> tuple[int, list[ModelDetails]]:
        """One page of a namespace's models (history left out) and the number of models matching."""
        query = listing_query(namespace_id, where)
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
        """Applied events of a model, newest first, and how many there are; None when the model is unknown."""
        collection = ModelDocument.get_pymongo_collection()
        cursor = await collection.aggregate(history_page_pipeline(key, offset, limit))
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
        placement: Placement | None = None,
        desired_by: str | None = None,
    ) -> bool:
        """Record what the user asked for, unless another request changed it since (compare-and-set).

        The only deployment fields the API writes (with `placement`: the cluster asked for and failover);
        the observed state belongs to the worker.
        """
        fields: dict[str, object] = {
            "desired_state": None if desired is None else str(desired),
            "desired_at": desired_at,
            "desired_by": desired_by,
            "updated_at": now,
        }
        update: dict[str, object] = {"$set": fields}
        if placement is not None:
            if placement.cluster is None:
                update["$unset"] = {"desired_cluster": ""}  # as a document without clusters has it
            else:
                fields["desired_cluster"] = placement.cluster
            if placement.failover is not None:
                fields["failover"] = placement.failover
        result = await ModelDocument.find_one({**key_filter(key), "desired_at": expected_desired_at}).update(
            update
        )
        return isinstance(result, UpdateResult) and result.matched_count == 1  # see ApiKeyStore.revoke

    async def update_tags(
        self, key: ModelKey, to_set: Mapping[str, str], to_remove: Sequence[str], now: datetime
    ) -> ModelDetails | None:
        """Set and remove tags in one update, key by key ($set/$unset of tags.<key>): concurrent changes of
        other keys are kept. The model as it is afterwards; None when there is no such model."""
        update: dict[str, Any] = {"$set": {**{f"tags.{k}": v for k, v in to_set.items()}, "updated_at": now}}
        if to_remove:
            update["$unset"] = {f"tags.{k}": "" for k in to_remove}
        collection = ModelDocument.get_pymongo_collection()
        found = await collection.find_one_and_update(
            key_filter(key),
            update,
            projection={"deployment_history": 0},
            return_document=ReturnDocument.AFTER,
        )
        return None if found is None else ModelDetails.model_validate(found)

    async def delete_model(self, key: ModelKey) -> bool:
        """Remove the model, leaving a tombstone first (the worker acknowledges its late undeploy events
        against it, `shared/tombstone_rules.py`; a tombstone of a model still there is never consulted), and
        its aliases after: whichever path deletes a model (a delete, a shared model's disable), no alias
        is left pointing at it or keeping it as its rollback target."""
        now = utc_now()
        await TombstoneStore().put(key, now, tombstone_expiry(now, self.tombstone_retention_s))
        result = await ModelDocument.find_one(key_filter(key)).delete()
        deleted = result is not None and result.deleted_count == 1
        if deleted:
            await AliasStore(self.history_limit).release_model(key)
        return deleted
