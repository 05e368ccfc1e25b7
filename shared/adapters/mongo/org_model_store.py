"""`org_models` (shared models) and the namespace copies that enable them in `custom_models`."""

from __future__ import annotations

from beanie import SortDirection
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from modelreg.shared.adapters.mongo.model_store import DuplicateModelError, DuplicateModelIdError
from modelreg.shared.documents import ModelDocument, ModelKeyFields, OrgModelDetails, OrgModelDocument


class OrgModelStore:
    """Shared models, and which namespaces enabled them (their copies carry `org_model_id`)."""

    async def insert(self, details: OrgModelDetails) -> None:
        """Raises DuplicateModelError (name and version taken) or DuplicateModelIdError."""
        try:
            await OrgModelDocument(**details.model_dump()).insert()
        except DuplicateKeyError as exc:
            taken = (exc.details or {}).get("keyPattern") or {}
            if "name" in taken:
                raise DuplicateModelError(f"{details.name} {details.version}") from None
            raise DuplicateModelIdError(details.model_id) from None

    async def get(self, model_id: str) -> OrgModelDetails | None:
        return await OrgModelDocument.find_one({"model_id": model_id}, projection_model=OrgModelDetails)

    async def list_all(self) -> list[OrgModelDetails]:
        """Every shared model but those being deleted, newest first."""
        return (
            await OrgModelDocument.find({"deleting": {"$ne": True}}, projection_model=OrgModelDetails)
            .sort([("created_at", SortDirection.DESCENDING), ("model_id", SortDirection.ASCENDING)])
            .to_list()
        )

    async def find_name_version(self, name: str, version: str) -> str | None:
        found = await OrgModelDocument.find_one(
            {"name": name, "version": version}, projection_model=OrgModelDetails
        )
        return found.model_id if found else None

    async def set_deleting(self, model_id: str, deleting: bool) -> bool:
        """Compare-and-set of the deletion mark; False when it already had that value (or no such model)."""
        result = await OrgModelDocument.find_one(
            {"model_id": model_id, "deleting": {"$ne": True} if deleting else True}
        ).update({"$set": {"deleting": deleting}})
        return isinstance(result, UpdateResult) and result.matched_count == 1

    async def delete(self, model_id: str) -> bool:
        result = await OrgModelDocument.find_one({"model_id": model_id}).delete()
        return result is not None and result.deleted_count == 1

    async def enabled_namespaces(self, model_id: str) -> list[str]:
        """Namespaces holding a copy of the shared model."""
        found = ModelDocument.find({"org_model_id": model_id}, projection_model=ModelKeyFields)
        return sorted([copy.namespace_id async for copy in found])

    async def enabled_in(self, namespace_id: str) -> set[str]:
        """Ids of the shared models the namespace enabled."""
        found = ModelDocument.find(
            {"namespace_id": namespace_id, "org_model_id": {"$ne": None}}, projection_model=ModelKeyFields
        )
        return {copy.model_id async for copy in found}

    async def deployed(self, model_ids: list[str]) -> set[str]:
        """Which of these shared models are deployed in at least one namespace."""
        if not model_ids:
            return set()
        found = ModelDocument.find(
            {"org_model_id": {"$in": model_ids}, "deployed": True}, projection_model=ModelKeyFields
        )
        return {copy.model_id async for copy in found}
