"""What the dispatcher needs: its store (endpoints, deliveries, resume token) and an HTTP sender."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from modelreg.shared.adapters.webhook_http import SendResult
from modelreg.shared.documents import WebhookDeliveryDocument, WebhookDocument


class DispatcherStore(Protocol):
    async def enabled_webhooks(self, namespace_id: str) -> list[WebhookDocument]: ...

    async def webhooks_by_id(self, webhook_ids: list[str]) -> dict[str, WebhookDocument]: ...

    async def set_webhook_health(self, webhook_id: str, changes: dict[str, Any]) -> None: ...

    async def insert_delivery(self, delivery: WebhookDeliveryDocument) -> bool: ...

    async def pending_deliveries(self, limit: int) -> list[WebhookDeliveryDocument]: ...

    async def update_delivery(self, delivery_id: str, changes: dict[str, Any]) -> None: ...

    async def resume_token(self) -> str | None: ...

    async def save_resume_token(self, token: str, now: datetime) -> None: ...


class Sender(Protocol):
    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult: ...
