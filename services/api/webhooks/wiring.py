"""The webhook service's provider for the app."""

from __future__ import annotations

from collections.abc import Callable

from modelreg.services.api.webhooks.service import WebhookService
from modelreg.shared.adapters.mongo.webhook_store import WebhookStore
from modelreg.shared.adapters.webhook_http import resolve
from modelreg.shared.settings import Settings
from modelreg.shared.webhook_rules import UrlPolicy


def provide_webhook_service(settings: Settings) -> Callable[[], WebhookService]:
    policy = UrlPolicy.from_setting(settings.webhook_allowed_hosts, settings.webhook_allow_private)
    store = WebhookStore()

    def provide() -> WebhookService:
        return WebhookService(store, policy, resolve)

    return provide
