"""`modelreg webhooks`: wires MongoDB, the change feed and HTTP into the dispatcher; stops on SIGTERM."""

from __future__ import annotations

import asyncio

import structlog

from modelreg.services.webhooks.dispatcher import Dispatcher
from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.mongo.change_stream import MongoChangeFeed, enable_pre_images
from modelreg.shared.adapters.mongo.webhook_store import WebhookStore
from modelreg.shared.adapters.webhook_http import WebhookSender, resolve
from modelreg.shared.retry import Stopping
from modelreg.shared.settings import Settings
from modelreg.shared.signals import stop_on_signals
from modelreg.shared.webhook_rules import RetryPolicy, UrlPolicy

log = structlog.get_logger("modelreg.webhooks")


def make_dispatcher(settings: Settings, client: mongo.MongoClient, sender: WebhookSender) -> Dispatcher:
    return Dispatcher(
        MongoChangeFeed(client, settings.mongodb_database),
        WebhookStore(),
        sender,
        RetryPolicy(
            initial_backoff_s=settings.webhook_initial_backoff_s,
            max_backoff_s=settings.webhook_max_backoff_s,
            retry_period_s=settings.webhook_retry_period_s,
            disable_after_s=settings.webhook_disable_after_s,
        ),
        UrlPolicy.from_setting(settings.webhook_allowed_hosts, settings.webhook_allow_private),
        resolve,
        poll_interval_s=settings.webhook_poll_interval_s,
        concurrency=settings.webhook_concurrency,
    )


async def run_dispatcher(settings: Settings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = asyncio.Event()
        stop_on_signals(stop)
    try:
        client = await mongo.connect_when_available(settings, stop)
    except Stopping:
        return
    sender = WebhookSender(settings.webhook_timeout_s)
    try:
        await enable_pre_images(client, settings.mongodb_database)
        log.info("webhook dispatcher started", database=settings.mongodb_database)
        await make_dispatcher(settings, client, sender).run(stop)
    finally:
        await sender.close()
        await client.close()
        log.info("webhook dispatcher stopped")
