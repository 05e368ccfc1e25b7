"""Predictions: resolve the model (directly or by alias), check the request, forward it, stream back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import msgspec

from modelreg.services.api.domain_errors import (
    AliasNotFound,
    EndpointFailed,
    EndpointTimeout,
    EndpointUnreachable,
    ModelNotDeployed,
    ModelNotFound,
)
from modelreg.services.api.models.views import current_status
from modelreg.services.api.predict.ports import (
    AcceptEveryRequest,
    AliasLookup,
    EndpointForwarder,
    ModelLookup,
    RequestCheck,
)
from modelreg.shared.adapters.inference import EndpointConnectionError, EndpointTimeoutError
from modelreg.shared.contracts import ModelKey
from modelreg.shared.inference_rules import (
    FORWARDED_REQUEST_HEADERS,
    Upstream,
    buffer_whole,
    prediction_endpoint,
    response_headers,
    upstream_outcome,
)


class Prediction(msgspec.Struct, kw_only=True):
    """The endpoint's answer as the API sends it back: status, headers, and the body, whole (short answers
    of known length) or streamed."""

    status_code: int
    headers: dict[str, str]
    media_type: str | None
    body: bytes | AsyncIterator[bytes]


class PredictionService:
    def __init__(
        self,
        models: ModelLookup,
        aliases: AliasLookup,
        endpoints: EndpointForwarder,
        check: RequestCheck | None = None,
    ) -> None:
        self.models = models
        self.aliases = aliases
        self.endpoints = endpoints
        # Where request validation (the model's input_schema) plugs in.
        self.check: RequestCheck = check if check is not None else AcceptEveryRequest()

    async def predict_alias(
        self, namespace_id: str, name: str, alias: str, body: bytes, headers: Mapping[str, str]
    ) -> Prediction:
        """Through the alias's current target: resolved on every request, so a move switches traffic."""
        state = await self.aliases.get(namespace_id, name, alias)
        if state is None:
            raise AliasNotFound(namespace_id, name, alias)
        return await self.predict(ModelKey(namespace_id, state.model_id), body, headers)

    async def predict(self, key: ModelKey, body: bytes, headers: Mapping[str, str]) -> Prediction:
        details = await self.models.get_details(key)
        if details is None:
            raise ModelNotFound(key)
        endpoint = prediction_endpoint(details)
        if endpoint is None:
            raise ModelNotDeployed(key, str(current_status(details)))
        content_type = headers.get("content-type")
        await self.check.check(details, body, content_type)
        forwarded = {name: headers[name] for name in FORWARDED_REQUEST_HEADERS if name in headers}
        try:
            answer = await self.endpoints.open(endpoint, body, forwarded)
            if upstream_outcome(answer.status_code) is Upstream.FAILED:
                await answer.aclose()
                raise EndpointFailed(key.model_id, answer.status_code)
            content = await answer.read() if buffer_whole(answer.headers) else answer.chunks()
        except EndpointTimeoutError:
            raise EndpointTimeout(key.model_id, self.endpoints.timeout_s) from None
        except EndpointConnectionError as exc:
            raise EndpointUnreachable(key.model_id, str(exc)) from None
        kept = response_headers(answer.headers)
        media_type = next((v for k, v in kept.items() if k.lower() == "content-type"), None)
        kept = {k: v for k, v in kept.items() if k.lower() != "content-type"}
        return Prediction(status_code=answer.status_code, headers=kept, media_type=media_type, body=content)
