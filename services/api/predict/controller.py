"""POST /v1/namespaces/{ns}/models/{id}/predict: the body goes to the model's endpoint, the answer back."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from modelreg.services.api.errors import ERROR_RESPONSES, HTTPValidationError, error_spec
from modelreg.services.api.models.controller import ModelId, NamespaceId
from modelreg.services.api.predict.service import Prediction, PredictionService
from modelreg.shared.contracts import ModelKey

PREDICT_RESPONSES: dict[int, ResponseSpec] = {
    **ERROR_RESPONSES,
    200: ResponseSpec(data_container=None, description="The endpoint's answer, streamed as it sent it"),
    404: error_spec("Model (or alias) not found"),
    409: error_spec("The model is not deployed (code model_not_deployed)"),
    422: ResponseSpec(
        data_container=HTTPValidationError,
        description="Validation Error (inputs that do not fit the model's input_schema: ErrorResponse with "
        "code invalid_model_inputs and details.inputs)",
    ),
    502: error_spec("The endpoint could not be reached (endpoint_unreachable) or failed (endpoint_error)"),
    504: error_spec("The endpoint did not answer within MODELREG_PREDICT_TIMEOUT_S (endpoint_timeout)"),
}
PREDICT_DESCRIPTION = (
    "Forwards the request body (and its Content-Type, Accept and X-Request-ID) to the model's current "
    "endpoint (deployment_info.endpoint, wherever it runs) and streams the answer back with its status; the "
    "endpoint's own 4xx pass through. A JSON body is checked against the model's input_schema first (when it "
    "declares inputs): 422 invalid_model_inputs names each offending input. 409 model_not_deployed, "
    "502 endpoint_unreachable / endpoint_error, 504 endpoint_timeout."
)


def streamed(prediction: Prediction) -> Response[bytes] | Stream:
    media_type = prediction.media_type or "application/octet-stream"
    if isinstance(prediction.body, bytes):
        return Response(
            prediction.body,
            status_code=prediction.status_code,
            headers=prediction.headers,
            media_type=media_type,
        )
    return Stream(
        prediction.body, status_code=prediction.status_code, headers=prediction.headers, media_type=media_type
    )


def forwarded_headers(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


class PredictController(Controller):
    path = "/namespaces/{namespace_id:str}/models"
    tags = ["Inference"]

    @post(
        "/{model_id:str}/predict",
        summary="Predict with a model",
        description=PREDICT_DESCRIPTION,
        operation_id="predict_v1_namespaces__namespace_id__models__model_id__predict_post",
        status_code=200,
        responses=PREDICT_RESPONSES,
    )
    async def predict(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        request: Request[Any, Any, Any],
        predictions: PredictionService,
    ) -> Response[bytes] | Stream:
        body = await request.body()
        prediction = await predictions.predict(
            ModelKey(namespace_id, model_id), body, forwarded_headers(request)
        )
        return streamed(prediction)
