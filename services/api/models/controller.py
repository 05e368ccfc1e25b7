"""HTTP routes of the models area; thin: parameters in, service call, body out."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from services.api.errors import ERROR_RESPONSES, ErrorResponse
from services.api.models.schemas import ModelDetailResponse
from services.api.models.service import ModelService
from shared.contracts import ModelKey

NamespaceId = Annotated[str, Parameter(title="Namespace Id", min_length=1, max_length=256)]
ModelId = Annotated[str, Parameter(title="Model Id", min_length=1, max_length=256)]


class ModelController(Controller):
    path = "/v1/namespaces/{namespace_id:str}/models"
    tags = ["Custom Models"]

    @get(
        "/{model_id:str}",
        summary="Get model details",
        description="Get detailed information about a specific model.",
        operation_id="get_model_v1_namespaces__namespace_id__models__model_id__get",
        response_description="Successful Response",
        responses={
            **ERROR_RESPONSES,
            404: ResponseSpec(data_container=ErrorResponse, description="Model not found"),
        },
    )
    async def get_model(
        self, namespace_id: NamespaceId, model_id: ModelId, models: ModelService
    ) -> ModelDetailResponse:
        return await models.get_details(ModelKey(namespace_id, model_id))
