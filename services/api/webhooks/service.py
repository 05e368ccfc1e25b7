"""Webhook endpoints: create (URL rules, a new signing secret), list, delete; the delivery log."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from modelreg.services.api.domain_errors import DeliveryNotFound, WebhookNotFound, WebhookUrlRefused
from modelreg.services.api.webhooks.ports import Resolver, WebhookRepository
from modelreg.services.api.webhooks.schemas import (
    DeliveryListResponse,
    DeliveryView,
    RedeliverResponse,
    WebhookCreateRequest,
    WebhookCreateResponse,
    WebhookDeleteResponse,
    WebhookListResponse,
    WebhookView,
    WebhookWithSecret,
)
from modelreg.shared.documents import DeliveryState, WebhookDeliveryDocument, WebhookDocument
from modelreg.shared.webhook_rules import UrlPolicy, UrlRefused, address_refusal, literal_address, parse_url

SECRET_BYTES = 32


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def delivery_view(delivery: WebhookDeliveryDocument) -> DeliveryView:
    return DeliveryView(
        delivery_id=delivery.delivery_id,
        event=delivery.event_type,
        model_id=delivery.model_id,
        state=str(delivery.state),
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=_utc(delivery.next_attempt_at) if delivery.state == DeliveryState.PENDING else None,
        created_at=_utc(delivery.created_at) or delivery.created_at,
        delivered_at=_utc(delivery.delivered_at),
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def webhook_view(webhook: WebhookDocument) -> WebhookView:
    return WebhookView(
        webhook_id=webhook.webhook_id,
        url=webhook.url,
        event_types=webhook.event_types,
        created_at=_utc(webhook.created_at) or webhook.created_at,
        disabled=webhook.disabled,
        disabled_reason=webhook.disabled_reason,
    )


async def check_url(url: str, policy: UrlPolicy, resolve: Resolver) -> None:
    """Raise WebhookUrlRefused unless the URL may be called (shared/webhook_rules.py)."""
    try:
        host, port = parse_url(url, policy)
    except UrlRefused as exc:
        raise WebhookUrlRefused(exc.code, exc.message, url) from exc
    literal = literal_address(host)
    addresses = [literal] if literal is not None else await resolve(host, port)
    refusal = address_refusal(host, port, addresses, policy)
    if refusal is not None:
        raise WebhookUrlRefused("webhook_url_not_public", refusal, url)


class WebhookService:
    def __init__(self, store: WebhookRepository, policy: UrlPolicy, resolve: Resolver) -> None:
        self.store = store
        self.policy = policy
        self.resolve = resolve

    async def create(self, namespace_id: str, request: WebhookCreateRequest) -> WebhookCreateResponse:
        await check_url(request.url, self.policy, self.resolve)
        webhook = WebhookDocument(
            webhook_id="wh_" + secrets.token_hex(12),
            namespace_id=namespace_id,
            url=request.url,
            event_types=sorted(set(request.event_types)),
            secret=new_secret(),
        )
        await self.store.insert_webhook(webhook)
        return WebhookCreateResponse(
            webhook=WebhookWithSecret(
                webhook_id=webhook.webhook_id,
                url=webhook.url,
                event_types=webhook.event_types,
                secret=webhook.secret,
            )
        )

    async def list(self, namespace_id: str) -> WebhookListResponse:
        return WebhookListResponse(
            webhooks=[webhook_view(w) for w in await self.store.list_webhooks(namespace_id)]
        )

    async def delete(self, namespace_id: str, webhook_id: str) -> WebhookDeleteResponse:
        if not await self.store.delete_webhook(namespace_id, webhook_id):
            raise WebhookNotFound(webhook_id)
        return WebhookDeleteResponse(webhook_id=webhook_id)

    async def deliveries(self, namespace_id: str, webhook_id: str, limit: int) -> DeliveryListResponse:
        await self._webhook(namespace_id, webhook_id)
        found = await self.store.list_deliveries(webhook_id, limit)
        return DeliveryListResponse(webhook_id=webhook_id, deliveries=[delivery_view(d) for d in found])

    async def redeliver(self, namespace_id: str, webhook_id: str, delivery_id: str) -> RedeliverResponse:
        await self._webhook(namespace_id, webhook_id)
        delivery = await self.store.get_delivery(webhook_id, delivery_id)
        if delivery is None:
            raise DeliveryNotFound(webhook_id, delivery_id)
        await self.store.redeliver(delivery_id, datetime.now(UTC))
        delivery = await self.store.get_delivery(webhook_id, delivery_id)
        if delivery is None:  # deleted meanwhile
            raise DeliveryNotFound(webhook_id, delivery_id)
        return RedeliverResponse(delivery=delivery_view(delivery))

    async def _webhook(self, namespace_id: str, webhook_id: str) -> WebhookDocument:
        webhook = await self.store.get_webhook(namespace_id, webhook_id)
        if webhook is None:
            raise WebhookNotFound(webhook_id)
        return webhook
