"""A namespace's view of the shared models: which are available, enabling and disabling them.

Enabling inserts a copy of the shared model into the namespace (same model_id, archive URL and hash,
`org_model_id` set), so the worker, the bridge and every namespace route treat it as the namespace's own
model. The copy's archive URL is the shared one, which storage never deletes on the namespace's behalf
(`ArchiveStorage.owns` only matches `{namespace}/{model_id}.tar.gz`). Disabling is deleting the copy: an
undeploy command first when anything is deployed, as `DELETE …/models/{model_id}` does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from modelreg.services.api.domain_errors import ModelIdTaken, OrgModelNotFound, VersionExists
from modelreg.services.api.models.deletion import ModelDeletion
from modelreg.services.api.models.deployment_requests import DeploymentRequests
from modelreg.services.api.models.ports import ModelRepository
from modelreg.services.api.models.views import current_status
from modelreg.services.api.org_models.ports import OrgModelRepository
from modelreg.services.api.org_models.schemas import (
    AvailableOrgModelsResponse,
    DisableOrgModelResponse,
    EnableOrgModelRequest,
    EnableOrgModelResponse,
)
from modelreg.services.api.org_models.views import available_item
from modelreg.shared.adapters.mongo import DuplicateModelError, DuplicateModelIdError
from modelreg.shared.contracts import DeploymentStatus, ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import ModelDetails, OrgModelDetails, ResourceRequirementsFields

log = structlog.get_logger("modelreg.api")


def namespace_copy(
    shared: OrgModelDetails, namespace_id: str, request: EnableOrgModelRequest, now: datetime
) -> ModelDetails:
    """The namespace's model document of an enabled shared model."""
    resources = shared.resource_requirements
    if request.resource_overrides is not None:
        override = request.resource_overrides
        resources = ResourceRequirementsFields(
            num_cpus=override.num_cpus, num_gpus=override.num_gpus, memory=override.memory
        )
    return ModelDetails(
        model_id=shared.model_id,
        namespace_id=namespace_id,
        name=shared.name,
        version=shared.version,
        model_archive_url=shared.model_archive_url,
        model_format=shared.model_format,
        model_hash=shared.model_hash,
        framework=shared.framework,
        task_type=shared.task_type,
        input_schema=shared.input_schema,
        output_schema=shared.output_schema,
        resource_requirements=resources,
        created_at=now,
        updated_at=now,
        deployment_status=DeploymentStatus.NOT_DEPLOYED,
        org_model_id=shared.model_id,
    )


class NamespaceOrgModels:
    def __init__(
        self,
        shared: OrgModelRepository,
        models: ModelRepository,
        requests: DeploymentRequests,
        deletion: ModelDeletion,
        clock: Callable[[], datetime],
    ) -> None:
        self.shared = shared
        self.models = models
        self.requests = requests
        self.deletion = deletion
        self.clock = clock

    async def available(self, namespace_id: str) -> AvailableOrgModelsResponse:
        shared = await self.shared.list_all()
        enabled = await self.shared.enabled_in(namespace_id)
        items = [available_item(model, model.model_id in enabled) for model in shared]
        return AvailableOrgModelsResponse(models=items, total=len(items), namespace_id=namespace_id)

    async def enable(
        self, namespace_id: str, model_id: str, request: EnableOrgModelRequest
    ) -> EnableOrgModelResponse:
        key = ModelKey(namespace_id, model_id)
        shared = await self.shared.get(model_id)
        if shared is None or shared.deleting:
            raise OrgModelNotFound(model_id)
        existing = await self.models.get_details(key)
        if existing is not None and existing.org_model_id != model_id:
            raise ModelIdTaken(key)
        message = "Shared model already enabled in the namespace"
        if existing is None:
            await self._insert_copy(namespace_id, shared, request)
            message = "Shared model enabled in the namespace"
        if request.deploy:
            answer, sent = await self.requests.request(key, DesiredState.DEPLOYED)
            return EnableOrgModelResponse(
                model_id=model_id,
                namespace_id=namespace_id,
                deployment_status=answer.deployment_status,
                message=f"{message}; deployment {'requested' if sent else 'already in place'}",
                command_id=answer.command_id,
            )
        details = await self.models.get_details(key)
        status = current_status(details) if details is not None else DeploymentStatus.NOT_DEPLOYED
        return EnableOrgModelResponse(
            model_id=model_id, namespace_id=namespace_id, deployment_status=str(status), message=message
        )

    async def _insert_copy(
        self, namespace_id: str, shared: OrgModelDetails, request: EnableOrgModelRequest
    ) -> None:
        key = ModelKey(namespace_id, shared.model_id)
        try:
            await self.models.insert_model(namespace_copy(shared, namespace_id, request, self.clock()))
        except DuplicateModelError:
            winner = await self.models.find_name_version(namespace_id, shared.name, shared.version)
            if winner != shared.model_id:
                raise VersionExists(shared.name, shared.version, winner) from None
            return  # a concurrent enable of the same model won: enabled either way
        except DuplicateModelIdError:
            raise ModelIdTaken(key) from None
        # A deletion of the shared model may have checked for copies just before this one was inserted.
        current = await self.shared.get(shared.model_id)
        if current is None or current.deleting:
            await self.models.delete_model(key)
            raise OrgModelNotFound(shared.model_id)
        log.info("shared model enabled", namespace_id=namespace_id, model_id=shared.model_id)

    async def disable(self, namespace_id: str, model_id: str) -> DisableOrgModelResponse:
        key = ModelKey(namespace_id, model_id)
        existing = await self.models.get_details(key)
        if existing is None or existing.org_model_id != model_id:
            if await self.shared.get(model_id) is None:
                raise OrgModelNotFound(model_id)
            return DisableOrgModelResponse(
                model_id=model_id, namespace_id=namespace_id, message="Shared model was not enabled"
            )
        deleted = await self.deletion.delete(key)
        log.info("shared model disabled", namespace_id=namespace_id, model_id=model_id)
        return DisableOrgModelResponse(
            model_id=model_id,
            namespace_id=namespace_id,
            message="Shared model disabled in the namespace"
            + ("; undeploy requested" if deleted.undeploy_command_id else ""),
            undeploy_command_id=deleted.undeploy_command_id,
        )
