"""HTTP routes of the models area; thin: parameters in, service call, body out."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_304_NOT_MODIFIED

from modelreg.services.api.errors import ERROR_RESPONSES, ErrorResponse, HTTPValidationError, error_spec
from modelreg.services.api.models.archives import ModelArchives
from modelreg.services.api.models.openapi import FilteredListOperation, UploadOperation
from modelreg.services.api.models.preferences import preferred_wait
from modelreg.services.api.models.schemas import (
    DeploymentHistoryResponse,
    DeploymentRequestResponse,
    DeployRequest,
    ListSort,
    ModelDeleteResponse,
    ModelDeployResponse,
    ModelDetailResponse,
    ModelFormatName,
    ModelListResponse,
    ModelPatch,
    ModelUploadResponse,
)
from modelreg.services.api.models.service import ModelService
from modelreg.services.api.models.views import etag_matches
from modelreg.shared.adapters.mongo import ModelFilter
from modelreg.shared.contracts import ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.filter_language import MAX_FILTER_LENGTH
from modelreg.shared.identifiers import ID_PATTERN, ID_RULE, MAX_ID_LENGTH

NamespaceId = Annotated[
    str,
    Parameter(
        title="Namespace Id", min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description=ID_RULE
    ),
]
ModelId = Annotated[
    str,
    Parameter(
        title="Model Id", min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description=ID_RULE
    ),
]
Limit = Annotated[int, Parameter(ge=1, le=100, description="Page size")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, description="Items to skip")]
FilterText = Annotated[str | None, Parameter(min_length=1, max_length=256)]
FilterExpression = Annotated[
    str | None,
    Parameter(
        min_length=1,
        max_length=MAX_FILTER_LENGTH,
        description=(
            "Filter language (docs/api.md): =, !=, <, >, <=, >=, IN (...), LIKE/ILIKE ('%', '_'), AND, OR, "
            "parentheses on name, version, model_format, framework, task_type, deployment_status, deployed, "
            "created_at, updated_at, tags.<key>; e.g. name = 'resnet' AND tags.stage IN ('prod', 'canary')"
        ),
    ),
]

NOT_FOUND = {404: error_spec("Model not found")}
CONFLICT = error_spec("Conflict")
# An invalid `filter` answers ErrorResponse (with its position); other invalid parameters HTTPValidationError
# (FilteredListOperation documents both).
FILTER_OR_VALIDATION_ERROR = ResponseSpec(
    data_container=HTTPValidationError,
    description="Validation Error (an invalid filter: ErrorResponse with details.position)",
)
UNAVAILABLE = {503: error_spec("The command broker is unavailable; nothing was recorded")}


class ModelController(Controller):
    path = "/namespaces/{namespace_id:str}/models"
    tags = ["Custom Models"]

    @get(
        "/{model_id:str}",
        summary="Get model details",
        description="Get detailed information about a specific model.",
        operation_id="get_model_v1_namespaces__namespace_id__models__model_id__get",
        response_description="Successful Response",
        responses={
            **ERROR_RESPONSES,
            304: ResponseSpec(
                data_container=None, description="Not Modified (the If-None-Match ETag matches)"
            ),
            404: ResponseSpec(data_container=ErrorResponse, description="Model not found"),
        },
    )
    async def get_model(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        models: ModelService,
        if_none_match: Annotated[
            str | None, Parameter(header="If-None-Match", description="ETag of a copy the client holds")
        ] = None,
    ) -> Response[ModelDetailResponse]:
        body, etag = await models.reads.get_details_encoded(ModelKey(namespace_id, model_id))
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        # The body is a ModelDetailResponse encoded ahead; the return annotation is what documents it in
        # OpenAPI, and Litestar's Response[T] cannot say "T, already encoded".
        if etag_matches(if_none_match, etag):
            return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)  # type: ignore[arg-type]
        return Response(content=body, media_type=MediaType.JSON, headers=headers)  # type: ignore[arg-type]

    @get(
        "/",
        summary="List models",
        description="A page of the namespace's models, newest first by default; stable order across pages.",
        operation_id="list_models_v1_namespaces__namespace_id__models_get",
        operation_class=FilteredListOperation,
        responses={
            **ERROR_RESPONSES,
            404: error_spec("Namespace not found (or not readable with this key)"),
            422: FILTER_OR_VALIDATION_ERROR,
        },
    )
    async def list_models(
        self,
        namespace_id: NamespaceId,
        models: ModelService,
        limit: Limit = 20,
        offset: Offset = 0,
        deployed: bool | None = None,
        task_type: FilterText = None,
        model_format: ModelFormatName | None = None,
        name: FilterText = None,
        sort: Annotated[ListSort, Parameter(description="Order; model_id breaks ties")] = "-created_at",
        filter: FilterExpression = None,  # noqa: A002 - the query parameter's name
    ) -> ModelListResponse:
        where = ModelFilter(deployed=deployed, task_type=task_type, model_format=model_format, name=name)
        return await models.reads.list_models(namespace_id, where, sort, offset, limit, filter_text=filter)

    @post(
        "/",
        summary="Upload a model",
        description=(
            "Upload a model archive (.tar.gz) as multipart/form-data with its metadata. The archive is "
            "stored and hashed (SHA-256) while it streams in; it must be a readable gzip'd tar with no "
            "links, absolute paths or '..' members."
        ),
        operation_id="upload_model_v1_namespaces__namespace_id__models_post",
        operation_class=UploadOperation,
        status_code=HTTP_201_CREATED,
        # The upload enforces its own limits while streaming (MODELREG_MAX_ARCHIVE_BYTES).
        request_max_body_size=None,
        responses={
            **ERROR_RESPONSES,
            409: error_spec("A model with this name and version already exists (code model_version_exists)"),
            413: error_spec("The archive or a form field is too large"),
            415: error_spec("The body is not multipart/form-data"),
        },
    )
    async def upload_model(
        self, namespace_id: NamespaceId, request: Request[Any, Any, Any], models: ModelService
    ) -> Response[ModelUploadResponse]:
        result = await models.registration.upload(
            namespace_id, request.stream(), request.headers.get("content-type"), request.content_length
        )
        # Ids are URL-safe by rule; quoting keeps the header ASCII whatever a stored id holds.
        location = f"/v1/namespaces/{quote(namespace_id, safe='')}/models/{quote(result.model_id, safe='')}"
        return Response(result, status_code=HTTP_201_CREATED, headers={"Location": location})

    @patch(
        "/{model_id:str}",
        summary="Change a model's tags",
        description=(
            'Sets tags (a string value) and removes others (null): {"tags": {"stage": "prod", "old": null}}. '
            "Each key changes atomically on its own, so concurrent changes of other keys are kept; tags "
            "not named stay as they are. Answers the model's details."
        ),
        operation_id="patch_model_v1_namespaces__namespace_id__models__model_id__patch",
        status_code=HTTP_200_OK,
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def patch_model(
        self, namespace_id: NamespaceId, model_id: ModelId, data: ModelPatch, models: ModelService
    ) -> ModelDetailResponse:
        return await models.tagging.patch(ModelKey(namespace_id, model_id), data)

    @delete(
        "/{model_id:str}",
        summary="Delete a model",
        description=(
            "Undeploys the model first if it is (or is being) deployed, by sending an undeploy command, then "
            "removes its record and archive. Deleting a model that is already gone answers the same way, "
            "with deleted=false. 409 (code model_has_aliases) while aliases point at it, unless force=true "
            "(then its aliases are removed too)."
        ),
        operation_id="delete_model_v1_namespaces__namespace_id__models__model_id__delete",
        status_code=HTTP_200_OK,
        responses={
            **ERROR_RESPONSES,
            409: error_spec("Aliases point at the model (code model_has_aliases)"),
            **UNAVAILABLE,
        },
    )
    async def delete_model(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        models: ModelService,
        force: Annotated[
            bool, Parameter(description="Delete even if aliases point at it; they go too")
        ] = False,
    ) -> ModelDeleteResponse:
        return await models.deletion.delete(ModelKey(namespace_id, model_id), force=force)

    @post(
        "/{model_id:str}/deploy",
        summary="Deploy a model",
        description=(
            "Asks the deployment bridge to deploy the model on Ray Serve and answers 200 with Mixpeek's "
            "ModelDeployResponse: deployment_status pending (command sent, command_id set) until the "
            "deployment is observed; deployed with cached=true when it already was (nothing sent). "
            "With `Prefer: wait=N` (RFC 7240) the answer waits up to N seconds (capped by "
            "MODELREG_API_MAX_DEPLOY_WAIT_S) for the outcome and says so in Preference-Applied. 409 (code "
            "transition_in_progress) while an undeploy is still running. The optional JSON body chooses "
            'the Ray cluster (`{"cluster": NAME}` or `{"labels": {...}}`, plus `{"failover": true}`); '
            "a model deployed elsewhere moves there without downtime; 409 (code no_cluster_fits) with "
            "each cluster's reason in details when none fits."
        ),
        operation_id="deploy_model_v1_namespaces__namespace_id__models__model_id__deploy_post",
        status_code=HTTP_200_OK,
        response_headers=[
            ResponseHeader(
                name="Preference-Applied",
                description="wait=N: the wait applied, when the request asked for one",
                value="wait=60",
                documentation_only=True,
            )
        ],
        responses={**ERROR_RESPONSES, **NOT_FOUND, 409: CONFLICT, **UNAVAILABLE},
    )
    async def deploy_model(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        models: ModelService,
        data: DeployRequest | None = None,
        prefer: Annotated[
            str | None,
            Parameter(
                header="Prefer",
                max_length=1024,
                description="RFC 7240 preferences; wait=N waits up to N seconds for deployed or failed",
            ),
        ] = None,
    ) -> Response[ModelDeployResponse]:
        answer = await models.requests.deploy(ModelKey(namespace_id, model_id), preferred_wait(prefer), data)
        headers = {} if answer.applied_wait is None else {"Preference-Applied": f"wait={answer.applied_wait}"}
        return Response(answer.body, status_code=HTTP_200_OK, headers=headers)

    @delete(
        "/{model_id:str}/deploy",
        summary="Undeploy a model",
        description=(
            "Asks the deployment bridge to remove the model from Ray Serve. 202: the command was sent "
            "and the model is deleting; 200: the model is not deployed, nothing was sent. Undeploying a "
            "pending model cancels its deployment."
        ),
        operation_id="undeploy_model_v1_namespaces__namespace_id__models__model_id__deploy_delete",
        status_code=HTTP_202_ACCEPTED,
        responses={
            **ERROR_RESPONSES,
            **NOT_FOUND,
            200: ResponseSpec(data_container=DeploymentRequestResponse, description="Not deployed"),
            409: CONFLICT,
            **UNAVAILABLE,
        },
    )
    async def undeploy_model(
        self, namespace_id: NamespaceId, model_id: ModelId, models: ModelService
    ) -> Response[DeploymentRequestResponse]:
        result, sent = await models.requests.request(
            ModelKey(namespace_id, model_id), DesiredState.NOT_DEPLOYED
        )
        return Response(result, status_code=HTTP_202_ACCEPTED if sent else HTTP_200_OK)

    @get(
        "/{model_id:str}/archive",
        summary="Download a model's archive",
        description=(
            "Streams the model's stored archive (application/gzip) with its Content-Length; the ETag is the "
            "archive's sha256 as the registry holds it (model_hash). Same key and namespace rules as the "
            "other reads: Ray Serve replicas on other machines fetch archives here with a read key."
        ),
        operation_id="download_model_archive_v1_namespaces__namespace_id__models__model_id__archive_get",
        media_type="application/gzip",
        responses={**ERROR_RESPONSES, 404: error_spec("Model or its archive not found")},
    )
    async def download_archive(
        self, namespace_id: NamespaceId, model_id: ModelId, archives: ModelArchives
    ) -> Stream:
        download = await archives.download(ModelKey(namespace_id, model_id))
        return Stream(
            download.chunks(),
            media_type="application/gzip",
            headers={
                "Content-Length": str(download.size),
                "ETag": download.etag,
                "Content-Disposition": f'attachment; filename="{quote(download.filename)}"',
            },
        )

    @get(
        "/{model_id:str}/events",
        summary="Deployment history of a model",
        description="The deployment events applied to the model, newest first.",
        operation_id="list_model_events_v1_namespaces__namespace_id__models__model_id__events_get",
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def model_events(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        models: ModelService,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> DeploymentHistoryResponse:
        return await models.reads.history(ModelKey(namespace_id, model_id), offset, limit)
