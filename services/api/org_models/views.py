"""What clients see of a shared model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from modelreg.services.api.org_models.schemas import (
    AvailableOrgModelItem,
    ModelRegistryIdentity,
    OrgModelDocument,
    OrgModelListItem,
)
from modelreg.shared.contracts import ModelResourceRequirements
from modelreg.shared.documents import OrgModelDetails


def _utc(value: datetime) -> datetime:
    # Documents written by other services may hold naive datetimes, UTC by MongoDB's convention.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Summary(TypedDict):
    """What every view of a shared model shows of it (the detail, the org's list, a namespace's list)."""

    model_id: str
    name: str
    version: str
    model_format: str
    description: str | None
    framework: str | None
    task_type: str | None


def summary(details: OrgModelDetails) -> Summary:
    return Summary(
        model_id=details.model_id,
        name=details.name,
        version=details.version,
        model_format=str(details.model_format),
        description=details.description,
        framework=details.framework,
        task_type=details.task_type,
    )


def registry_identity(organization_id: str, model_id: str) -> ModelRegistryIdentity:
    return ModelRegistryIdentity(
        registry_id=f"org:{organization_id}:{model_id}",
        shared_model_key=model_id,
        inference_service_id=model_id,
    )


def org_detail_view(
    details: OrgModelDetails, organization_id: str, enabled: list[str], deployed: bool
) -> OrgModelDocument:
    resources = details.resource_requirements
    return OrgModelDocument(
        **summary(details),
        organization_id=organization_id,
        s3_archive_url=details.model_archive_url,
        model_hash=details.model_hash,
        deployed=deployed,
        input_schema=details.input_schema,
        output_schema=details.output_schema,
        resource_requirements=ModelResourceRequirements(
            num_cpus=resources.num_cpus, num_gpus=resources.num_gpus, memory=resources.memory
        ),
        created_at=_utc(details.created_at),
        updated_at=_utc(details.updated_at),
        registry=registry_identity(organization_id, details.model_id),
        enabled_namespaces=enabled,
    )


def org_list_item(details: OrgModelDetails, organization_id: str, deployed: bool) -> OrgModelListItem:
    return OrgModelListItem(
        **summary(details),
        deployed=deployed,
        created_at=_utc(details.created_at),
        updated_at=_utc(details.updated_at),
        registry=registry_identity(organization_id, details.model_id),
    )


def available_item(details: OrgModelDetails, enabled: bool) -> AvailableOrgModelItem:
    return AvailableOrgModelItem(**summary(details), enabled_in_namespace=enabled)
