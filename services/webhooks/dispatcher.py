"""The webhook dispatcher: change feed → delivery log (MongoDB) → signed POSTs, at least once.

Ingest reads the change feed after its stored resume token and records one delivery per matching webhook
(unique per webhook and change, so a replay after a crash records nothing twice), then stores the token.
Delivery sends, per webhook and model, the oldest pending delivery only (in order), retrying with
exponential backoff and jitter until the retry period ends (then the delivery is failed); an endpoint whose
deliveries all failed for MODELREG_WEBHOOK_DISABLE_AFTER_S is disabled with a reason. A SIGKILL at any
point loses nothing: the log and the token are in MongoDB, and `webhook-id` lets receivers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import structlog
from standardwebhooks.webhooks import Webhook

from modelreg.services.api.watch.service import change_body
from modelreg.services.api.webhooks.ports import Resolver
from modelreg.services.changefeed.ports import ChangeFeed
from modelreg.services.webhooks.ports import DispatcherStore, Sender
from modelreg.shared.adapters.webhook_http import SendResult
from modelreg.shared.changes import RegistryChange
from modelreg.shared.documents import DeliveryState, WebhookDeliveryDocument, WebhookDocument
from modelreg.shared.webhook_rules import (
    RetryPolicy,
    UrlPolicy,
    UrlRefused,
    address_refusal,
    literal_address,
    next_attempt,
    parse_url,
    should_disable,
    wants,
)

log = structlog.get_logger("modelreg.webhooks")

PENDING_BATCH = 1000
IDLE_POLL_S = 0.02
TOKEN_SAVE_S = 0.5
MAX_INFLIGHT_INSERTS = 64
# A webhook created (or disabled) takes effect for changes committed at most this much later.
WEBHOOKS_TTL_S = 1.0


def delivery_id(webhook_id: str, token: str) -> str:
    """The same id for the same change and webhook, whoever records it (the receiver's dedup key)."""
    return "msg_" + hashlib.sha256(f"{webhook_id}:{token}".encode()).hexdigest()[:32]


def payload(change: RegistryChange) -> tuple[str, str, str, dict[str, object]] | None:
    """(namespace, model, event type, body) of a change webhooks carry; None for others."""
    described = change_body(change)
    if described is None:
        return None
    summary, event = described
    body = {
        "type": str(summary.kind),
        "timestamp": change.committed_at.isoformat(),
        "data": msgspec.to_builtins(event),
    }
    return summary.namespace_id, summary.model_id, str(summary.kind), body


class Dispatcher:
    def __init__(
        self,
        feed: ChangeFeed,
        store: DispatcherStore,
        sender: Sender,
        retry: RetryPolicy,
        urls: UrlPolicy,
        resolve: Resolver,
        *,
        poll_interval_s: float = 0.5,
        concurrency: int = 16,
    ) -> None:
        self.feed = feed
        self.store = store
        self.sender = sender
        self.retry = retry
        self.urls = urls
        self.resolve = resolve
        self.poll_interval_s = poll_interval_s
        self.concurrency = asyncio.Semaphore(concurrency)
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self._order = 0
        self._webhooks: dict[str, tuple[float, list[WebhookDocument]]] = {}
        # Deliveries being inserted, in order; those up to `stored_through` are all stored.
        self._inflight: deque[tuple[int, asyncio.Task[bool]]] = deque()
        self.stored_through = time.time_ns()  # everything recorded by earlier runs is stored

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._forever(self.ingest)),
            asyncio.create_task(self._forever(self.deliver)),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _forever(self, loop: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            try:
                await loop()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning(
                    "webhook dispatcher loop failed",
                    loop=getattr(loop, "__name__", "?"),
                    error=repr(exc)[:300],
                )
                await asyncio.sleep(min(10.0, 0.2 * 2 ** min(failures, 6)))

    # --- ingest: the change feed into the delivery log ---------------------------------------------------

    def _next_order(self) -> int:
        self._order = max(self._order + 1, time.time_ns())
        return self._order

    async def ingest(self) -> None:
        token = await self.store.resume_token()
        saved, saved_at = token, time.monotonic()
        async with self.feed.open(token) as cursor:
            while True:
                started = time.monotonic()
                change = await cursor.next()
                if change is not None:
                    await self.record(change)
                    token = change.token
                    self.wake.set()
                elif token is None:
                    token = cursor.position  # from now on: remember where "now" was
                # The token is stored when the feed is idle and at least every TOKEN_SAVE_S: a crash
                # replays at most that much, and replayed changes are not recorded twice.
                due = change is None or time.monotonic() - saved_at >= TOKEN_SAVE_S
                if token is not None and token != saved and due:
                    await self._flush()
                    await self.store.save_resume_token(token, datetime.now(UTC))
                    saved, saved_at = token, time.monotonic()
                if change is None:
                    if not self.ready.is_set() and saved is not None:
                        log.info("webhook dispatcher following the change feed")
                        self.ready.set()
                    if time.monotonic() - started < IDLE_POLL_S:
                        await asyncio.sleep(IDLE_POLL_S)

    async def _webhooks_of(self, namespace_id: str) -> list[WebhookDocument]:
        """The namespace's enabled webhooks, read at most every WEBHOOKS_TTL_S."""
        cached = self._webhooks.get(namespace_id)
        now = time.monotonic()
        if cached is None or now - cached[0] >= WEBHOOKS_TTL_S:
            cached = (now, await self.store.enabled_webhooks(namespace_id))
            self._webhooks[namespace_id] = cached
        return cached[1]

    async def record(self, change: RegistryChange) -> int:
        described = payload(change)
        if described is None:
            return 0
        namespace_id, model_id, event_type, body = described
        recorded = 0
        encoded = msgspec.json.encode(body).decode()
        for webhook in await self._webhooks_of(namespace_id):
            if not wants(webhook.event_types, event_type):
                continue
            delivery = WebhookDeliveryDocument(
                delivery_id=delivery_id(webhook.webhook_id, change.token),
                webhook_id=webhook.webhook_id,
                namespace_id=namespace_id,
                model_id=model_id,
                change_token=change.token,
                event_type=event_type,
                body=encoded,
                order=self._next_order(),
                next_attempt_at=datetime.now(UTC),
            )
            await self._insert(delivery)
            recorded += 1
        return recorded

    async def _insert(self, delivery: WebhookDeliveryDocument) -> None:
        """Insert in the background (at most MAX_INFLIGHT_INSERTS at once); deliveries become eligible in
        order, once every delivery recorded before them is stored (the watermark)."""
        while len(self._inflight) >= MAX_INFLIGHT_INSERTS:
            await asyncio.wait([self._inflight[0][1]])
            self._advance()
        self._inflight.append((delivery.order, asyncio.create_task(self.store.insert_delivery(delivery))))

    def _advance(self) -> None:
        """Move the watermark past the inserts that finished in order; a failed insert raises here."""
        while self._inflight and self._inflight[0][1].done():
            order, task = self._inflight.popleft()
            task.result()
            self.stored_through = order

    async def _flush(self) -> None:
        """Until every recorded delivery is stored (before the resume token moves past its change)."""
        while self._inflight:
            await asyncio.wait([self._inflight[0][1]])
            self._advance()

    # --- delivery: the log out to the endpoints ----------------------------------------------------------

    async def deliver(self) -> None:
        while True:
            self.wake.clear()  # before looking: a delivery recorded meanwhile wakes the wait below
            if await self.deliver_due():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_interval_s)

    async def deliver_due(self) -> int:
        """Send the first pending delivery of every (webhook, model) that is due; how many were sent."""
        self._advance()
        stored_through = self.stored_through
        pending = await self.store.pending_deliveries(PENDING_BATCH)
        heads: dict[tuple[str, str], WebhookDeliveryDocument] = {}
        for delivery in pending:
            if delivery.order <= stored_through:  # a later one may be stored before an earlier one
                heads.setdefault((delivery.webhook_id, delivery.model_id), delivery)
        now = datetime.now(UTC)
        due = [d for d in heads.values() if d.next_attempt_at is None or _aware(d.next_attempt_at) <= now]
        if not due:
            return 0
        webhooks = await self.store.webhooks_by_id(sorted({d.webhook_id for d in due}))
        await asyncio.gather(*(self._attempt(d, webhooks.get(d.webhook_id)) for d in due))
        return len(due)

    async def _attempt(self, delivery: WebhookDeliveryDocument, webhook: WebhookDocument | None) -> None:
        async with self.concurrency:
            now = datetime.now(UTC)
            if webhook is None or webhook.disabled:
                reason = "the webhook was deleted" if webhook is None else "the webhook is disabled"
                await self.store.update_delivery(
                    delivery.delivery_id, {"state": str(DeliveryState.FAILED), "last_error": reason}
                )
                return
            result = await self._send(delivery, webhook, now)
            await self._record_result(delivery, webhook, result)

    async def _send(
        self, delivery: WebhookDeliveryDocument, webhook: WebhookDocument, now: datetime
    ) -> SendResult:
        try:
            host, port = parse_url(webhook.url, self.urls)
        except UrlRefused as exc:
            return SendResult(None, exc.message)
        literal = literal_address(host)
        addresses = [literal] if literal is not None else await self.resolve(host, port)
        refusal = address_refusal(host, port, addresses, self.urls)
        if refusal is not None:
            return SendResult(None, refusal)
        signature = Webhook(webhook.secret).sign(delivery.delivery_id, now, delivery.body)
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
            "user-agent": "modelreg-webhooks",
        }
        return await self.sender.send(webhook.url, delivery.body.encode(), headers)

    async def _record_result(
        self, delivery: WebhookDeliveryDocument, webhook: WebhookDocument, result: SendResult
    ) -> None:
        now = datetime.now(UTC)
        attempts = delivery.attempts + 1
        changes: dict[str, object] = {
            "attempts": attempts,
            "last_status_code": result.status_code,
            "last_error": result.error,
        }
        if result.ok:
            changes.update(state=str(DeliveryState.DELIVERED), delivered_at=now, next_attempt_at=None)
            await self.store.update_delivery(delivery.delivery_id, changes)
            if webhook.failing_since is not None:
                await self.store.set_webhook_health(webhook.webhook_id, {"failing_since": None})
            return
        retry_at = next_attempt(attempts, _aware(delivery.created_at), now, self.retry)
        if retry_at is None:
            changes.update(state=str(DeliveryState.FAILED), next_attempt_at=None)
        else:
            changes.update(next_attempt_at=retry_at)
        await self.store.update_delivery(delivery.delivery_id, changes)
        log.info(
            "webhook delivery failed",
            webhook_id=webhook.webhook_id,
            delivery_id=delivery.delivery_id,
            attempts=attempts,
            status=result.status_code,
            error=result.error,
            gave_up=retry_at is None,
        )
        failing_since = _aware(webhook.failing_since) if webhook.failing_since else now
        health: dict[str, object] = {}
        if webhook.failing_since is None:
            health["failing_since"] = now
        if should_disable(failing_since, now, self.retry):
            health.update(
                disabled=True, disabled_reason=f"every delivery failed since {failing_since.isoformat()}"
            )
            log.warning("webhook disabled", webhook_id=webhook.webhook_id, url=webhook.url)
        if health:
            await self.store.set_webhook_health(webhook.webhook_id, health)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
