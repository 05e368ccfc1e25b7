"""Webhook routes of a namespace; thin: parameters in, service call, body out (docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import NamespaceId
from modelreg.services.api.webhooks.schemas import (
    DeliveryListResponse,
    RedeliverResponse,
    WebhookCreateRequest,
    WebhookCreateResponse,
    WebhookDeleteResponse,
    WebhookListResponse,
)
from modelreg.services.api.webhooks.service import WebhookService

ResourceId = Annotated[str, Parameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
NOT_FOUND = {404: error_spec("Webhook or delivery not found")}


class WebhookController(Controller):
    path = "/namespaces/{namespace_id:str}/webhooks"
    tags = ["Webhooks"]

    @post(
        operation_id="create_webhook",
        summary="Create a webhook",
        description=(
            "Changes of the namespace's models are POSTed to `url`, signed as the Standard Webhooks spec "
            "says (`webhook-id`, `webhook-timestamp`, `webhook-signature`). The answer shows the signing "
            "secret once. URLs must be https and reach public addresses (see MODELREG_WEBHOOK_ALLOWED_HOSTS)."
        ),
        status_code=HTTP_201_CREATED,
        responses=ERROR_RESPONSES,
    )
    async def create_webhook(
        self, namespace_id: NamespaceId, data: WebhookCreateRequest, webhooks: WebhookService
    ) -> WebhookCreateResponse:
        return await webhooks.create(namespace_id, data)

    @get(operation_id="list_webhooks", summary="List the namespace's webhooks", responses=ERROR_RESPONSES)
    async def list_webhooks(self, namespace_id: NamespaceId, webhooks: WebhookService) -> WebhookListResponse:
        return await webhooks.list(namespace_id)

    @delete(
        "/{webhook_id:str}",
        operation_id="delete_webhook",
        summary="Delete a webhook and its delivery log",
        status_code=HTTP_200_OK,
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def delete_webhook(
        self, namespace_id: NamespaceId, webhook_id: ResourceId, webhooks: WebhookService
    ) -> WebhookDeleteResponse:
        return await webhooks.delete(namespace_id, webhook_id)

    @get(
        "/{webhook_id:str}/deliveries",
        operation_id="list_webhook_deliveries",
        summary="The webhook's deliveries, newest first",
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def list_deliveries(
        self,
        namespace_id: NamespaceId,
        webhook_id: ResourceId,
        webhooks: WebhookService,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> DeliveryListResponse:
        return await webhooks.deliveries(namespace_id, webhook_id, limit)

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/redeliver",
        operation_id="redeliver_webhook_delivery",
        summary="Send a delivery again",
        description="Puts the delivery back in the queue (same `webhook-id`); the dispatcher sends it next.",
        status_code=HTTP_200_OK,
        responses={**ERROR_RESPONSES, **NOT_FOUND},
    )
    async def redeliver(
        self,
        namespace_id: NamespaceId,
        webhook_id: ResourceId,
        delivery_id: ResourceId,
        webhooks: WebhookService,
    ) -> RedeliverResponse:
        return await webhooks.redeliver(namespace_id, webhook_id, delivery_id)
