"""HTTP routes of aliases: /v1/namespaces/{ns}/names/{name}/aliases[/{alias}[/rollback|/predict]]."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from modelreg.services.api.aliases.paths import name_from_segment
from modelreg.services.api.aliases.schemas import (
    AliasDeleteResponse,
    AliasDetailResponse,
    AliasListResponse,
    AliasResponse,
    SetAliasRequest,
)
from modelreg.services.api.aliases.service import AliasService
from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import NamespaceId
from modelreg.services.api.models.schemas import LABEL_PATTERN
from modelreg.services.api.predict.controller import (
    PREDICT_DESCRIPTION,
    PREDICT_RESPONSES,
    forwarded_headers,
    streamed,
)
from modelreg.services.api.predict.service import PredictionService
from modelreg.shared.api_keys import Principal
from modelreg.shared.identifiers import ID_PATTERN, ID_RULE, MAX_ID_LENGTH

ModelName = Annotated[
    str,
    Parameter(
        title="Name",
        min_length=1,
        max_length=3 * 256,  # a name of up to 256 characters, each "/" or "%" sent as three
        pattern=LABEL_PATTERN,
        description='Model name; a "/" in it is sent as %2F (and a "%" as %25), e.g. org%2Fbert-base',
    ),
]
AliasName = Annotated[
    str,
    Parameter(title="Alias", min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description=ID_RULE),
]
NOT_FOUND = {404: error_spec("Alias (or model) not found")}


def model_name(name: ModelName) -> str:
    """The name the path's segment stands for: a name holding "/" arrives encoded (`paths.EncodedNames`)."""
    return name_from_segment(name)


def actor(request: Request[Principal, Any, Any]) -> str | None:
    principal: Principal = request.user
    return principal.key_prefix


class AliasController(Controller):
    path = "/namespaces/{namespace_id:str}/names/{name:str}/aliases"
    tags = ["Aliases"]
    dependencies = {"model_name": Provide(model_name, sync_to_thread=False)}

    @get(
        "/",
        summary="List a name's aliases",
        operation_id="list_aliases_v1_namespaces__namespace_id__names__name__aliases_get",
        responses={**ERROR_RESPONSES},
    )
    async def list_aliases(
        self, namespace_id: NamespaceId, model_name: str, alias_service: AliasService
    ) -> AliasListResponse:
        return await alias_service.list_for_name(namespace_id, model_name)

    @get(
        "/{alias:str}",
        summary="Get an alias and its target",
        description="The alias and the details of the model it points at.",
        operation_id="get_alias_v1_namespaces__namespace_id__names__name__aliases__alias__get",
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def get_alias(
        self, namespace_id: NamespaceId, model_name: str, alias: AliasName, alias_service: AliasService
    ) -> AliasDetailResponse:
        return await alias_service.get(namespace_id, model_name, alias)

    @put(
        "/{alias:str}",
        summary="Point an alias at a model",
        description=(
            "Creates the alias or moves it to `model_id` (a model of this name); the target it leaves "
            "becomes `previous_model_id` (the rollback target). Two moves at once are both applied, one "
            "after the other. 409 model_name_mismatch; alias_target_not_deployed (require_deployed=true)."
        ),
        operation_id="set_alias_v1_namespaces__namespace_id__names__name__aliases__alias__put",
        status_code=HTTP_200_OK,
        responses={**ERROR_RESPONSES, **NOT_FOUND, 409: error_spec("Refused (see code)")},
    )
    async def set_alias(
        self,
        namespace_id: NamespaceId,
        model_name: str,
        alias: AliasName,
        data: SetAliasRequest,
        request: Request[Principal, Any, Any],
        alias_service: AliasService,
        require_deployed: Annotated[
            bool, Parameter(description="Refuse (409 alias_target_not_deployed) a target not deployed")
        ] = False,
    ) -> AliasResponse:
        return await alias_service.set(
            namespace_id,
            model_name,
            alias,
            data.model_id,
            actor=actor(request),
            require_deployed=require_deployed,
        )

    @delete(
        "/{alias:str}",
        summary="Remove an alias",
        operation_id="delete_alias_v1_namespaces__namespace_id__names__name__aliases__alias__delete",
        status_code=HTTP_200_OK,
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def delete_alias(
        self, namespace_id: NamespaceId, model_name: str, alias: AliasName, alias_service: AliasService
    ) -> AliasDeleteResponse:
        return await alias_service.remove(namespace_id, model_name, alias)

    @post(
        "/{alias:str}/rollback",
        summary="Roll an alias back",
        description=(
            "Points the alias back at `previous_model_id`, in one call; the target it leaves becomes the new "
            "previous one (a second rollback undoes the first). 409 alias_has_no_previous."
        ),
        operation_id="rollback_alias_v1_namespaces__namespace_id__names__name__aliases__alias__rollback_post",
        status_code=HTTP_200_OK,
        responses={**ERROR_RESPONSES, **NOT_FOUND, 409: error_spec("Nothing to roll back to")},
    )
    async def rollback_alias(
        self,
        namespace_id: NamespaceId,
        model_name: str,
        alias: AliasName,
        request: Request[Principal, Any, Any],
        alias_service: AliasService,
    ) -> AliasResponse:
        return await alias_service.rollback(namespace_id, model_name, alias, actor=actor(request))

    @post(
        "/{alias:str}/predict",
        summary="Predict through an alias",
        description="The alias is resolved on every request, so moving it switches traffic. "
        + PREDICT_DESCRIPTION,
        operation_id="predict_alias_v1_namespaces__namespace_id__names__name__aliases__alias__predict_post",
        status_code=HTTP_200_OK,
        responses=PREDICT_RESPONSES,
    )
    async def predict_alias(
        self,
        namespace_id: NamespaceId,
        model_name: str,
        alias: AliasName,
        request: Request[Any, Any, Any],
        predictions: PredictionService,
    ) -> Response[bytes] | Stream:
        body = await request.body()
        prediction = await predictions.predict_alias(
            namespace_id, model_name, alias, body, forwarded_headers(request)
        )
        return streamed(prediction)
