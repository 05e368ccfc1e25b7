"""`webhooks`, `webhook_deliveries` and `webhook_dispatcher`: endpoints, the delivery log, the dispatcher's
resume token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import SortDirection
from pymongo.errors import DuplicateKeyError

from modelreg.shared.documents import (
    DeliveryState,
    DispatcherStateDocument,
    WebhookDeliveryDocument,
    WebhookDocument,
)

DISPATCHER = "webhooks"


class WebhookStore:
    # --- endpoints --------------------------------------------------------------------------------------

    async def insert_webhook(self, webhook: WebhookDocument) -> None:
        await webhook.insert()

    async def list_webhooks(self, namespace_id: str) -> list[WebhookDocument]:
        found = WebhookDocument.find({"namespace_id": namespace_id}).sort(
            [("created_at", SortDirection.ASCENDING)]
        )
        return await found.to_list()

    async def get_webhook(self, namespace_id: str, webhook_id: str) -> WebhookDocument | None:
        return await WebhookDocument.find_one({"namespace_id": namespace_id, "webhook_id": webhook_id})

    async def delete_webhook(self, namespace_id: str, webhook_id: str) -> bool:
        found = await self.get_webhook(namespace_id, webhook_id)
        if found is None:
            return False
        await found.delete()
        await WebhookDeliveryDocument.find({"webhook_id": webhook_id}).delete()
        return True

    async def enabled_webhooks(self, namespace_id: str) -> list[WebhookDocument]:
        return await WebhookDocument.find({"namespace_id": namespace_id, "disabled": False}).to_list()

    async def webhooks_by_id(self, webhook_ids: list[str]) -> dict[str, WebhookDocument]:
        found = await WebhookDocument.find({"webhook_id": {"$in": webhook_ids}}).to_list()
        return {w.webhook_id: w for w in found}

    async def set_webhook_health(self, webhook_id: str, changes: dict[str, Any]) -> None:
        await WebhookDocument.get_pymongo_collection().update_one(
            {"webhook_id": webhook_id}, {"$set": changes}
        )

    # --- the delivery log -------------------------------------------------------------------------------

    async def insert_delivery(self, delivery: WebhookDeliveryDocument) -> bool:
        """False if this change was already recorded for the webhook (a replay after a crash)."""
        try:
            await delivery.insert()
        except DuplicateKeyError:
            return False
        return True

    async def list_deliveries(self, webhook_id: str, limit: int) -> list[WebhookDeliveryDocument]:
        found = WebhookDeliveryDocument.find({"webhook_id": webhook_id})
        return await found.sort([("order", SortDirection.DESCENDING)]).limit(limit).to_list()

    async def get_delivery(self, webhook_id: str, delivery_id: str) -> WebhookDeliveryDocument | None:
        return await WebhookDeliveryDocument.find_one({"webhook_id": webhook_id, "delivery_id": delivery_id})

    async def pending_deliveries(self, limit: int) -> list[WebhookDeliveryDocument]:
        found = WebhookDeliveryDocument.find({"state": str(DeliveryState.PENDING)})
        return await found.sort([("order", SortDirection.ASCENDING)]).limit(limit).to_list()

    async def update_delivery(self, delivery_id: str, changes: dict[str, Any]) -> None:
        await WebhookDeliveryDocument.get_pymongo_collection().update_one(
            {"delivery_id": delivery_id}, {"$set": changes}
        )

    async def redeliver(self, delivery_id: str, now: datetime) -> None:
        await self.update_delivery(
            delivery_id, {"state": str(DeliveryState.PENDING), "next_attempt_at": now, "delivered_at": None}
        )

    # --- the dispatcher's position ----------------------------------------------------------------------

    async def resume_token(self) -> str | None:
        state = await DispatcherStateDocument.find_one({"name": DISPATCHER})
        return None if state is None else state.resume_token

    async def save_resume_token(self, token: str, now: datetime) -> None:
        await DispatcherStateDocument.get_pymongo_collection().update_one(
            {"name": DISPATCHER}, {"$set": {"resume_token": token, "updated_at": now}}, upsert=True
        )
