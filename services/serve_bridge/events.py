"""Building and publishing the bridge's deployment events: one sequence clock for the whole process.

The bridge publishes through `DeploymentEventProducer`, the one event producer of the codebase (the one other
services use too); here it only adds what the bridge knows: the Serve endpoint, the base image, the
application name and Ray's messages made printable.
"""

from __future__ import annotations

import structlog

from modelreg.services.serve_bridge import metrics
from modelreg.shared.adapters.event_producer import DeploymentEventProducer
from modelreg.shared.adapters.kafka import Publisher
from modelreg.shared.contracts import DeploymentEvent, EventType, ModelFormat, ModelKey, printable_message
from modelreg.shared.event_building import SequenceClock
from modelreg.shared.serve_routes import endpoint_url, serve_base_url
from modelreg.shared.settings import Settings

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
        # No contract check before sending: an event the worker refuses is dead-lettered where operators
        # see it, rather than stopping the watcher.
        self.producer = DeploymentEventProducer.from_settings(
            settings, publisher=publisher, clock=clock, check_contract=False
        )
        self.clock = self.producer.clock
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
        return self.producer.event(
            event_type,
            key.namespace_id,
            key.model_id,
            ray_cluster_url=self.cluster_url,
            ray_deployment_name=app_name,
            endpoint=endpoint_url(serve_base_url(self.settings), key),
            base_image=base_image(self.settings, model_format),
            message=message,
            cluster=self.cluster,
        )

    async def publish(self, event: DeploymentEvent) -> None:
        await self.producer.publish(event)
        metrics.EVENTS_PUBLISHED.labels(event_type=str(event.event_type)).inc()
        log.info(
            "event published",
            event_id=str(event.event_id),
            event_type=str(event.event_type),
            model=str(event.key),
            sequence=event.sequence,
            message=(event.message or "")[:300] or None,
        )
