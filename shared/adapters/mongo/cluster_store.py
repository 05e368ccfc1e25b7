"""The `ray_clusters` collection (named Ray clusters and their observed health) and the placement queries
on `custom_models` that clusters need: models placed on a cluster, the failover retarget."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from modelreg.shared.adapters.mongo.mapping import key_filter, observed_from_details
from modelreg.shared.cluster_routing import DEFAULT_CLUSTER
from modelreg.shared.contracts import ClusterHealthReport, ClusterResources, ModelKey
from modelreg.shared.deployment_rules import OBSERVED_ON_SERVE, DesiredState, ObservedDeployment
from modelreg.shared.documents import ClusterDocument, ClusterRecord, ModelDetails, ModelDocument
from modelreg.shared.placement import ClusterCandidate, Requirements, requirements_from


class DuplicateClusterError(Exception):
    """A cluster with this name is already registered."""


class PlacedModel(msgspec.Struct, kw_only=True, frozen=True):
    """A model placed on a cluster, as the loss check needs it."""

    key: ModelKey
    observed: ObservedDeployment
    failover: bool
    needs: Requirements


def _placed_filter(cluster: str) -> dict[str, Any]:
    """Models living on the cluster (their placement, or no placement at all for the default cluster), or
    asked to be deployed there."""
    live = sorted(str(s) for s in OBSERVED_ON_SERVE)
    placement: dict[str, Any] = {"cluster": cluster}
    if cluster == DEFAULT_CLUSTER:
        placement = {"cluster": {"$in": [None, cluster]}}
    return {
        "$or": [
            {**placement, "$or": [{"deployed": True}, {"deployment_status": {"$in": live}}]},
            {"desired_cluster": cluster, "desired_state": str(DesiredState.DEPLOYED)},
        ]
    }


def candidate(record: ClusterRecord) -> ClusterCandidate:
    """A stored cluster as placement sees it."""
    resources = None if record.resources is None else msgspec.convert(record.resources, ClusterResources)
    return ClusterCandidate(
        name=record.name,
        labels=dict(record.labels),
        healthy=record.healthy and not record.unreachable,
        resources=resources,
    )


class ClusterStore:
    # --- registration (the operator's CLI) ------------------------------------------------------------

    async def add(self, record: ClusterRecord) -> None:
        try:
            await ClusterDocument(**record.model_dump()).insert()
        except DuplicateKeyError:
            raise DuplicateClusterError(record.name) from None

    async def get(self, name: str) -> ClusterRecord | None:
        return await ClusterDocument.find_one({"name": name}, projection_model=ClusterRecord)

    async def all(self) -> list[ClusterRecord]:
        return await ClusterDocument.find({}, projection_model=ClusterRecord).sort("name").to_list()

    async def set_addresses(self, name: str, ray_address: str, serve_url: str) -> None:
        await ClusterDocument.find_one({"name": name}).update(
            {"$set": {"ray_address": ray_address, "serve_url": serve_url}}
        )

    async def remove(self, name: str) -> bool:
        result = await ClusterDocument.find_one({"name": name}).delete()
        return result is not None and result.deleted_count == 1

    async def models_placed(self) -> dict[str, int]:
        """How many models live on (or are asked on) each cluster; a model moving counts on both."""
        counts: dict[str, int] = {}
        for record in await self.all():
            counts[record.name] = await ModelDocument.find(_placed_filter(record.name)).count()
        return counts

    async def count_placed(self, name: str) -> int:
        return await ModelDocument.find(_placed_filter(name)).count()

    # --- observed health (the worker only) --------------------------------------------------------------

    async def apply_report(self, report: ClusterHealthReport, seen_at: datetime) -> bool:
        """Store a report unless a newer one is stored already (or the cluster is not registered)."""
        guard = {
            "name": report.cluster,
            "$or": [{"last_report_sequence": None}, {"last_report_sequence": {"$lt": report.sequence}}],
        }
        observed: dict[str, Any] = {
            "healthy": report.serve_up,
            "last_seen_at": seen_at,
            "last_report_sequence": report.sequence,
            "resources": msgspec.to_builtins(report.resources),
            "applications": msgspec.to_builtins(report.applications),
            "message": report.message,
        }
        if report.serve_up:
            # Only a report that Serve is up brings a lost cluster back (a cluster that does not answer is
            # still lost while its bridge keeps reporting it).
            # (The unreachable flag is cleared by mark_reachable, which tells the worker the cluster is back.)
            observed |= {"last_up_at": seen_at}
        result = await ClusterDocument.find_one(guard).update({"$set": observed})
        return isinstance(result, UpdateResult) and result.matched_count == 1

    async def mark_reachable(self, name: str) -> bool:
        """Clear the cluster's unreachable flag; True when it was set (the cluster just came back)."""
        result = await ClusterDocument.find_one({"name": name, "unreachable": True}).update(
            {"$set": {"unreachable": False}}
        )
        return isinstance(result, UpdateResult) and result.matched_count == 1

    async def mark_unreachable(self, name: str, last_seen_at: datetime) -> bool:
        """Flag the cluster unreachable, unless a report arrived since it was read (compare-and-set)."""
        result = await ClusterDocument.find_one(
            {"name": name, "last_seen_at": last_seen_at, "unreachable": False}
        ).update({"$set": {"unreachable": True, "healthy": False}})
        return isinstance(result, UpdateResult) and result.matched_count == 1

    # --- models and clusters ------------------------------------------------------------------------------

    async def models_living_on(self, name: str) -> list[PlacedModel]:
        found = ModelDocument.find(_placed_filter(name), projection_model=ModelDetails)
        return [
            PlacedModel(
                key=ModelKey(d.namespace_id, d.model_id),
                observed=observed_from_details(d),
                failover=d.failover,
                needs=requirements_from(d.resource_requirements.model_dump()),
            )
            async for d in found
        ]

    async def load_placements(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]:
        keys = list(keys)
        if not keys:
            return {}
        clauses = [key_filter(key) for key in keys]
        found = ModelDocument.find({"$or": clauses}, projection_model=ModelDetails)
        return {ModelKey(d.namespace_id, d.model_id): observed_from_details(d) async for d in found}

    async def retarget(self, key: ModelKey, from_cluster: str | None, to_cluster: str, now: datetime) -> bool:
        """Ask for the model on another cluster (failover), unless someone asked otherwise meanwhile."""
        result = await ModelDocument.find_one({**key_filter(key), "desired_cluster": from_cluster}).update(
            {
                "$set": {
                    "desired_cluster": to_cluster,
                    "desired_state": str(DesiredState.DEPLOYED),
                    "desired_at": now,
                    "desired_by": None,  # the failover check asked, not a request
                    "updated_at": now,
                }
            }
        )
        return isinstance(result, UpdateResult) and result.matched_count == 1
