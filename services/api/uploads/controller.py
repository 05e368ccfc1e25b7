"""HTTP routes of presigned uploads; thin: parameters in, one service call, body out."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from modelreg.services.api.auth.guards import admin_guard
from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import NamespaceId
from modelreg.services.api.uploads.schemas import (
    ConfirmModelUploadRequest,
    ConfirmModelUploadResponse,
    CreateModelUploadRequest,
    ModelPresignedURLResponse,
    OrgConfirmModelUploadResponse,
    OrgModelPresignedURLResponse,
    UploadReceivedResponse,
)
from modelreg.services.api.uploads.service import UploadService

UploadId = Annotated[str, Parameter(title="Upload Id", pattern=r"^upload_[0-9a-f]{24}$")]
NOT_FOUND = {404: error_spec("Upload not found (or not in this namespace)")}
GONE = {410: error_spec("The upload expired (code upload_expired)")}
ADMIN_ONLY = {403: error_spec("Not an admin key (code admin_required)")}
USED = {409: error_spec("Used already (upload_already_used), nothing uploaded yet or still in flight")}


class UploadController(Controller):
    tags = ["Custom Models"]

    @post(
        "/namespaces/{namespace_id:str}/models/uploads",
        summary="Create a presigned model upload",
        description=(
            "Step 1 of the presigned workflow: announces a model archive and answers where to PUT it "
            "(an S3 presigned URL, or a signed URL on the registry with filesystem storage), with the "
            "Content-Type to send. Step 3 is POST .../models/uploads/{upload_id}/confirm."
        ),
        operation_id="create_model_upload_v1_namespaces__namespace_id__models_uploads_post",
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            409: error_spec("A model with this name and version already exists (code model_version_exists)"),
            413: error_spec("file_size_bytes exceeds the archive limit (code archive_too_large)"),
        },
    )
    async def create_upload(
        self,
        namespace_id: NamespaceId,
        data: CreateModelUploadRequest,
        request: Request[Any, Any, Any],
        uploads: UploadService,
    ) -> ModelPresignedURLResponse:
        return await uploads.create(namespace_id, data, str(request.base_url))

    @post(
        "/namespaces/{namespace_id:str}/models/uploads/{upload_id:str}/confirm",
        summary="Confirm a presigned model upload",
        description=(
            "Step 3: checks the uploaded archive as the multipart upload does (SHA-256, archive safety and "
            "caps, name+version unique) and creates the model. An upload is confirmed once."
        ),
        operation_id="confirm_model_upload_v1_namespaces__namespace_id__models_uploads__upload_id__confirm_post",
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            **NOT_FOUND,
            **USED,
            **GONE,
            413: error_spec("The uploaded archive exceeds the archive limit (code archive_too_large)"),
        },
    )
    async def confirm_upload(
        self,
        namespace_id: NamespaceId,
        upload_id: UploadId,
        uploads: UploadService,
        data: ConfirmModelUploadRequest | None = None,
    ) -> ConfirmModelUploadResponse:
        return await uploads.confirm(namespace_id, upload_id, data)


class OrgUploadController(Controller):
    """The presigned workflow for shared (org-level) models: the SDK's ModelsApi upload routes."""

    path = "/models/uploads"
    tags = ["Models"]

    @post(
        "/",
        summary="Create a presigned upload of a shared model",
        description=(
            "Step 1 of the presigned workflow for a shared model: as the namespace route, with the "
            "organization instead of a namespace. PUT the archive to presigned_url, then POST "
            "/v1/models/uploads/{upload_id}/confirm. Admin keys only."
        ),
        operation_id="generate_upload_url_v1_models_uploads_post",
        guards=[admin_guard],
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            **ADMIN_ONLY,
            409: error_spec("A shared model with this name and version exists (code model_version_exists)"),
            413: error_spec("file_size_bytes exceeds the archive limit (code archive_too_large)"),
        },
    )
    async def create_org_upload(
        self, data: CreateModelUploadRequest, request: Request[Any, Any, Any], uploads: UploadService
    ) -> OrgModelPresignedURLResponse:
        return await uploads.create_shared(data, str(request.base_url))

    @post(
        "/{upload_id:str}/confirm",
        summary="Confirm a presigned upload of a shared model",
        description=(
            "Step 3: checks the uploaded archive as the shared model's multipart upload does and registers "
            "the shared model. An upload is confirmed once. Admin keys only."
        ),
        operation_id="confirm_upload_v1_models_uploads__upload_id__confirm_post",
        guards=[admin_guard],
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            **ADMIN_ONLY,
            404: error_spec("Upload not found (or not a shared model's upload)"),
            **USED,
            **GONE,
            413: error_spec("The uploaded archive exceeds the archive limit (code archive_too_large)"),
        },
    )
    async def confirm_org_upload(
        self, upload_id: UploadId, uploads: UploadService, data: ConfirmModelUploadRequest | None = None
    ) -> OrgConfirmModelUploadResponse:
        return await uploads.confirm_shared(upload_id, data)


class SignedUploadController(Controller):
    """The registry's own signed upload URL: outside the /v1 router, as its signature is its credential."""

    path = "/v1"
    tags = ["Custom Models"]

    @put(
        "/uploads/{upload_id:str}",
        summary="Upload an archive to a signed upload URL",
        description=(
            "The presigned_url of an upload with filesystem storage: PUT the .tar.gz as the body with "
            "Content-Type: application/gzip. The URL's signature is its credential (no API key); it "
            "expires with the upload and takes one archive."
        ),
        operation_id="put_upload_v1_uploads__upload_id__put",
        status_code=HTTP_200_OK,
        request_max_body_size=None,  # the service enforces MODELREG_MAX_ARCHIVE_BYTES while streaming
        responses={
            **ERROR_RESPONSES,
            **NOT_FOUND,
            **USED,
            **GONE,
            413: error_spec("The archive exceeds the archive limit (code archive_too_large)"),
            415: error_spec("Not sent with Content-Type: application/gzip (code wrong_content_type)"),
        },
    )
    async def put_upload(
        self,
        upload_id: UploadId,
        request: Request[Any, Any, Any],
        uploads: UploadService,
        expires: str | None = None,
        signature: str | None = None,
    ) -> UploadReceivedResponse:
        return await uploads.receive(
            upload_id,
            expires,
            signature,
            request.headers.get("content-type"),
            request.content_length,
            request.stream(),
        )
