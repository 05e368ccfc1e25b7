"""Building and publishing the bridge's deployment events: one sequence clock for the whole process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog

from services.serve_bridge import metrics
from services.serve_bridge.transitions import SequenceClock
from shared.adapters.kafka import Publisher
from shared.contracts import DeploymentEvent, EventType, ModelFormat, ModelKey, printable_message
from shared.serve_routes import endpoint_url, serve_base_url
from shared.settings import Settings

MAX_EVENT_MESSAGE = 8192
log = structlog.get_logger("modelreg.bridge")


def base_image(settings: Settings, model_format: ModelFormat | str | None) -> str | None:
    if model_format is None:
        return None
    image: str = getattr(settings, f"base_image_{ModelFormat(model_format).value}")  # one per format
    return image


class EventPublisher:
    def __init__(self, settings: Settings, publisher: Publisher, clock: SequenceClock | None = None) -> None:
        self.settings = settings
        self.publisher = publisher
        self.clock = clock or SequenceClock()
        self.cluster_url: str | None = None
        # Every event names the cluster it happened on (`modelreg bridge --cluster NAME`).
        self.cluster = settings.bridge_cluster

    def build(
        self,
        key: ModelKey,
        event_type: EventType,
        *,
        app_name: str | None,
        model_format: ModelFormat | str | None,
        message: str | None = None,
    ) -> DeploymentEvent:
        if message is not None:
            # Ray's and archives' texts may carry control characters the event contract refuses.
            message = printable_message(message)
            if len(message) > MAX_EVENT_MESSAGE:
                message = message[: MAX_EVENT_MESSAGE - 1] + "…"
        return DeploymentEvent(
            event_id=uuid.uuid4(),
            event_type=event_type,
            namespace_id=key.namespace_id,
            model_id=key.model_id,
            sequence=self.clock.next(),
            occurred_at=datetime.now(UTC),
            ray_cluster_url=self.cluster_url,
            ray_deployment_name=app_name,
            endpoint=endpoint_url(serve_base_url(self.settings), key),
            base_image=base_image(self.settings, model_format),
            message=message,
            cluster=self.cluster,
        )

    async def publish(self, event: DeploymentEvent) -> None:
        await self.publisher.publish(self.settings.events_topic, event)
        metrics.EVENTS_PUBLISHED.labels(event_type=str(event.event_type)).inc()
        log.info(
            "event published",
            event_id=str(event.event_id),
            event_type=str(event.event_type),
            model=str(event.key),
            sequence=event.sequence,
            message=(event.message or "")[:300] or None,
        )
