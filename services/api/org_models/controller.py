"""HTTP routes of shared (org-level) models: the catalog under /v1/models, a namespace's view of it under
/v1/namespaces/{namespace_id}/models/{available,org/...}. Thin: parameters in, one service call, body out."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, post
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from modelreg.services.api.auth.guards import admin_guard
from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import ModelId, NamespaceId
from modelreg.services.api.org_models.openapi import OrgUploadOperation
from modelreg.services.api.org_models.schemas import (
    AvailableOrgModelsResponse,
    DisableOrgModelResponse,
    EnableOrgModelRequest,
    EnableOrgModelResponse,
    OrgModelDeleteResponse,
    OrgModelDetailResponse,
    OrgModelListResponse,
    OrgModelUploadResponse,
)
from modelreg.services.api.org_models.service import OrgModelService

__all__ = ["ORG_MODEL_CONTROLLERS"]

ORG_NOT_FOUND = {404: error_spec("Shared model not found")}
ADMIN_ONLY = {403: error_spec("Not an admin key (code admin_required)")}


class OrgModelController(Controller):
    path = "/models"
    tags = ["Models"]

    @get(
        "/",
        summary="List shared models",
        description="Every shared (org-level) model; any key may read.",
        responses=ERROR_RESPONSES,
    )
    async def list_org_models(self, org_models: OrgModelService) -> OrgModelListResponse:
        return await org_models.catalog.list_models()

    @post(
        "/",
        summary="Register a shared model (upload)",
        description=(
            "Upload a model archive (.tar.gz) as multipart/form-data, with the namespace upload's fields "
            "and an optional description; it is checked as a namespace upload is. Admin keys only."
        ),
        guards=[admin_guard],
        operation_class=OrgUploadOperation,
        status_code=HTTP_201_CREATED,
        request_max_body_size=None,
        responses={
            **ERROR_RESPONSES,
            **ADMIN_ONLY,
            409: error_spec("A shared model with this name and version exists (code model_version_exists)"),
            413: error_spec("The archive or a form field is too large"),
            415: error_spec("The body is not multipart/form-data"),
        },
    )
    async def upload_org_model(
        self, request: Request[Any, Any, Any], org_models: OrgModelService
    ) -> Response[OrgModelUploadResponse]:
        result = await org_models.catalog.upload(
            request.stream(), request.headers.get("content-type"), request.content_length
        )
        location = f"/v1/models/{quote(result.model_id, safe='')}"
        return Response(result, status_code=HTTP_201_CREATED, headers={"Location": location})

    @get(
        "/{model_id:str}",
        summary="Get a shared model",
        responses={**ERROR_RESPONSES, **ORG_NOT_FOUND},
    )
    async def get_org_model(self, model_id: ModelId, org_models: OrgModelService) -> OrgModelDetailResponse:
        return await org_models.catalog.get(model_id)

    @delete(
        "/{model_id:str}",
        summary="Delete a shared model",
        description=(
            "Removes the shared model and its archive. Refused (409, code org_model_enabled, "
            "details.namespaces) while a namespace has it enabled: disable it there first. Admin keys only."
        ),
        guards=[admin_guard],
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            **ADMIN_ONLY,
            **ORG_NOT_FOUND,
            409: error_spec("Enabled in namespaces"),
        },
    )
    async def delete_org_model(
        self, model_id: ModelId, org_models: OrgModelService
    ) -> OrgModelDeleteResponse:
        return await org_models.catalog.delete(model_id)

    @get(
        "/{model_id:str}/download",
        summary="Download a shared model's archive",
        description="Streams the archive (application/gzip) from the directory or bucket. Admin keys only.",
        guards=[admin_guard],
        media_type="application/gzip",
        responses={**ERROR_RESPONSES, **ADMIN_ONLY, **ORG_NOT_FOUND},
    )
    async def download_org_model(self, model_id: ModelId, org_models: OrgModelService) -> Stream:
        download = await org_models.catalog.download(model_id)
        return Stream(
            download.chunks(),
            media_type="application/gzip",
            headers={"Content-Disposition": f'attachment; filename="{quote(download.filename)}"'},
        )


class NamespaceOrgModelController(Controller):
    path = "/namespaces/{namespace_id:str}/models"
    tags = ["Custom Models"]

    @get(
        "/available",
        summary="List shared models available to the namespace",
        description="Every shared model, and whether the namespace enabled it.",
        responses={**ERROR_RESPONSES, 404: error_spec("Namespace not found (or not readable with this key)")},
    )
    async def list_available_org_models(
        self, namespace_id: NamespaceId, org_models: OrgModelService
    ) -> AvailableOrgModelsResponse:
        return await org_models.namespaces.available(namespace_id)

    @post(
        "/org/{model_id:str}/enable",
        summary="Enable a shared model in the namespace",
        description=(
            "The model becomes one of the namespace's models (same model_id): it reads, deploys and predicts "
            "like them. deploy: true also deploys it (as POST …/{model_id}/deploy). Enabling it again "
            "changes nothing."
        ),
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            **ORG_NOT_FOUND,
            409: error_spec("Name and version, or the model id, taken in the namespace; or a transition"),
            503: error_spec("The command broker is unavailable (deploy: true)"),
        },
    )
    async def enable_org_model(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        org_models: OrgModelService,
        data: EnableOrgModelRequest | None = None,
    ) -> EnableOrgModelResponse:
        return await org_models.namespaces.enable(namespace_id, model_id, data or EnableOrgModelRequest())

    @post(
        "/org/{model_id:str}/disable",
        summary="Disable a shared model in the namespace",
        description=(
            "Undeploys it in the namespace (undeploy command) if needed and removes the namespace's copy; "
            "the shared model and its archive stay, available to every namespace."
        ),
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            **ORG_NOT_FOUND,
            503: error_spec("The command broker is unavailable; nothing was changed"),
        },
    )
    async def disable_org_model(
        self, namespace_id: NamespaceId, model_id: ModelId, org_models: OrgModelService
    ) -> DisableOrgModelResponse:
        return await org_models.namespaces.disable(namespace_id, model_id)


ORG_MODEL_CONTROLLERS = [OrgModelController, NamespaceOrgModelController]
