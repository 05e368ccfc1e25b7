"""What the bridge last published per model, and publishing the next event about a model."""

from __future__ import annotations

from aiokafka.errors import KafkaError

from modelreg.services.serve_bridge.naming import NamingError, app_name, parse_deployment_name
from modelreg.services.serve_bridge.ports import EventSink
from modelreg.services.serve_bridge.transitions import (
    AppObservation,
    Reported,
    event_for_status,
    status_message,
)
from modelreg.shared.contracts import EventType, ModelFormat, ModelKey
from modelreg.shared.retry import RetryPolicy
from modelreg.shared.settings import Settings


class Reporter:
    """Publishes the bridge's events; `reported` is the last one per model.

    `busy` holds the models whose command is in hand: the watcher leaves those to the command. Nothing here
    is stored; after a restart or a reconnect the watcher's reconciliation publishes everything again.
    """

    def __init__(self, settings: Settings, publisher: EventSink, retry: RetryPolicy) -> None:
        self.prefix = settings.serve_app_prefix
        self.publisher = publisher
        self.retry = retry
        self.reported: dict[ModelKey, Reported] = {}
        self.busy: set[ModelKey] = set()

    async def publish(
        self,
        key: ModelKey,
        event_type: EventType,
        *,
        model_format: ModelFormat | str | None,
        message: str | None = None,
        app: str | None = None,
    ) -> None:
        if app is None:
            try:
                app = app_name(self.prefix, key)
            except NamingError:
                app = None
        event = self.publisher.build(
            key, event_type, app_name=app, model_format=model_format, message=message
        )
        await self.retry.run("publish_event", lambda: self.publisher.publish(event), (KafkaError, OSError))

    async def announce(self, key: ModelKey, name: str, app: AppObservation) -> None:
        """Publish what an application currently is, and remember it."""
        parsed = parse_deployment_name(app.deployment_name)
        event_type = event_for_status(app.status)
        await self.publish(
            key,
            event_type,
            model_format=parsed[0] if parsed else None,
            message=status_message(app),
            app=name,
        )
        self.reported[key] = Reported(event_type, True, app.deployment_name)

    async def deleted(self, key: ModelKey, message: str | None = None) -> None:
        """Publish that Serve has no application for the model, and remember it."""
        await self.publish(key, EventType.DELETED, model_format=None, message=message)
        self.reported[key] = Reported(EventType.DELETED, False)
