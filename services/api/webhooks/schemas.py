"""Bodies of the webhook routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from modelreg.shared.change_rules import CHANGE_KINDS

EventTypeName = Literal[
    "model.created",
    "deployment.changed",
    "deploy.requested",
    "undeploy.requested",
    "model.deleted",
    "model.updated",
]
assert sorted(EventTypeName.__args__) == sorted(CHANGE_KINDS)  # type: ignore[attr-defined]


class WebhookCreateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048, description="Where to POST changes")]
    event_types: Annotated[
        list[EventTypeName], msgspec.Meta(max_length=16, description="Change types to send; empty: all")
    ] = msgspec.field(default_factory=list)


class WebhookView(msgspec.Struct, kw_only=True):
    webhook_id: str
    url: str
    event_types: list[str]
    created_at: datetime
    disabled: bool = False
    disabled_reason: str | None = None


class WebhookWithSecret(msgspec.Struct, kw_only=True):
    webhook_id: str
    url: str
    event_types: list[str]
    # The signing secret (whsec_...): shown only in the answer to the creation.
    secret: str


class WebhookCreateResponse(msgspec.Struct, kw_only=True):
    success: bool = True
    webhook: WebhookWithSecret


class WebhookListResponse(msgspec.Struct, kw_only=True):
    success: bool = True
    webhooks: list[WebhookView]


class WebhookDeleteResponse(msgspec.Struct, kw_only=True):
    success: bool = True
    webhook_id: str


class DeliveryView(msgspec.Struct, kw_only=True):
    delivery_id: str
    event: str
    model_id: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryListResponse(msgspec.Struct, kw_only=True):
    success: bool = True
    webhook_id: str
    deliveries: list[DeliveryView]


class RedeliverResponse(msgspec.Struct, kw_only=True):
    success: bool = True
    delivery: DeliveryView
