"""What the webhook routes need: the store of endpoints and deliveries, and name resolution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from modelreg.shared.documents import WebhookDeliveryDocument, WebhookDocument

Resolver = Callable[[str, int], Awaitable[list[str]]]


class WebhookRepository(Protocol):
    async def insert_webhook(self, webhook: WebhookDocument) -> None: ...

    async def list_webhooks(self, namespace_id: str) -> list[WebhookDocument]: ...

    async def get_webhook(self, namespace_id: str, webhook_id: str) -> WebhookDocument | None: ...

    async def delete_webhook(self, namespace_id: str, webhook_id: str) -> bool: ...

    async def list_deliveries(self, webhook_id: str, limit: int) -> list[WebhookDeliveryDocument]: ...

    async def get_delivery(self, webhook_id: str, delivery_id: str) -> WebhookDeliveryDocument | None: ...

    async def redeliver(self, delivery_id: str, now: datetime) -> None: ...
