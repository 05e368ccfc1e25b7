"""The webhook service's provider for the app."""

from __future__ import annotations

from collections.abc import Callable

from services.api.webhooks.service import WebhookService
from shared.adapters.mongo.webhook_store import WebhookStore
from shared.adapters.webhook_http import resolve
from shared.settings import Settings
from shared.webhook_rules import UrlPolicy


def provide_webhook_service(settings: Settings) -> Callable[[], WebhookService]:
    policy = UrlPolicy.from_setting(settings.webhook_allowed_hosts, settings.webhook_allow_private)
    store = WebhookStore()

    def provide() -> WebhookService:
        return WebhookService(store, policy, resolve)

    return provide
