"""The one producer of deployment events: the Ray Serve bridge publishes through it, and so can any other
service that runs models and tells the registry about them.

```python
async with DeploymentEventProducer("kafka:9092", "model-deployment-events") as producer:
    await producer.started("team-a", "model_1")
    await producer.ready("team-a", "model_1", endpoint="http://serve:8000/team-a/model_1",
                         base_image="registry.example.com/serve-onnx:1")
```

Events are built per the contract (`shared.event_building`): monotonic sequences (microseconds since the
epoch, never repeating within the producer), keyed `namespace_id/model_id` so one model's events keep their
order, and each call returns once the broker acknowledged the event (acks=all).
"""

from __future__ import annotations

from typing import Any, Unpack

from modelreg.shared.adapters.kafka import KafkaPublisher, Publisher
from modelreg.shared.contracts import DeploymentEvent, EventType
from modelreg.shared.event_building import EventFields, SequenceClock, build_event, check_event
from modelreg.shared.settings import Settings

DEFAULT_EVENTS_TOPIC = Settings().events_topic


class DeploymentEventProducer:
    """Builds, checks and publishes deployment events to one topic.

    `idempotent`: Kafka's idempotent producer (turn it off for brokers without it, such as tansu).
    `cluster`: the named Ray cluster put on every event unless a call names another (None: the default one).
    `check_contract`: refuse (InvalidMessage) an event the worker would dead-letter, before sending it.
    `timeout_s` bounds the producer's start and each send. `publisher` replaces the Kafka publisher (a
    recording fake in unit tests, or a started one shared with other senders); it is not closed here then.
    Raises aiokafka's KafkaError when the broker refuses or cannot be reached in time.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_EVENTS_TOPIC,
        *,
        idempotent: bool = True,
        cluster: str | None = None,
        check_contract: bool = True,
        timeout_s: float | None = 30.0,
        clock: SequenceClock | None = None,
        publisher: Publisher | None = None,
        **producer_options: object,
    ) -> None:
        self.topic = topic
        self.cluster = cluster
        self.check_contract = check_contract
        self.clock = clock or SequenceClock()
        self._owned: KafkaPublisher | None = None
        if publisher is None:
            kafka_settings = Settings(kafka_bootstrap_servers=bootstrap_servers, kafka_idempotent=idempotent)
            publisher = self._owned = KafkaPublisher(kafka_settings, timeout_s=timeout_s, **producer_options)
        self.publisher: Publisher = publisher

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        clock: SequenceClock | None = None,
        **options: Any,
    ) -> DeploymentEventProducer:
        """A producer to `MODELREG_EVENTS_TOPIC` on `MODELREG_KAFKA_BOOTSTRAP_SERVERS`."""
        options.setdefault("idempotent", settings.kafka_idempotent)
        return cls(
            settings.kafka_bootstrap_servers,
            settings.events_topic,
            publisher=publisher,
            clock=clock,
            **options,
        )

    def event(
        self, event_type: EventType | str, namespace_id: str, model_id: str, **fields: Unpack[EventFields]
    ) -> DeploymentEvent:
        """The next event of this producer (its sequence taken from the producer's clock, its cluster the
        producer's unless `cluster` names one), not yet sent. The fields as `build_event` takes them."""
        if fields.get("cluster") is None:
            fields["cluster"] = self.cluster
        return build_event(event_type, namespace_id, model_id, sequence=self.clock.next(), **fields)

    async def publish(self, event: DeploymentEvent) -> DeploymentEvent:
        """Send one event (keyed by its model) and return it once the broker acknowledged it."""
        if self.check_contract:
            check_event(event)
        await self.publisher.publish(self.topic, event)
        return event

    async def send(
        self, event_type: EventType | str, namespace_id: str, model_id: str, **fields: Any
    ) -> DeploymentEvent:
        """Build the next event (fields as `event`) and publish it."""
        return await self.publish(self.event(event_type, namespace_id, model_id, **fields))

    async def started(self, namespace_id: str, model_id: str, **fields: Any) -> DeploymentEvent:
        return await self.send(EventType.STARTED, namespace_id, model_id, **fields)

    async def ready(
        self, namespace_id: str, model_id: str, *, endpoint: str, base_image: str, **fields: Any
    ) -> DeploymentEvent:
        """The model answers at `endpoint`, served from `base_image` (both required by the contract)."""
        return await self.send(
            EventType.READY, namespace_id, model_id, endpoint=endpoint, base_image=base_image, **fields
        )

    async def unhealthy(self, namespace_id: str, model_id: str, **fields: Any) -> DeploymentEvent:
        return await self.send(EventType.UNHEALTHY, namespace_id, model_id, **fields)

    async def failed(self, namespace_id: str, model_id: str, **fields: Any) -> DeploymentEvent:
        return await self.send(EventType.FAILED, namespace_id, model_id, **fields)

    async def deleting(self, namespace_id: str, model_id: str, **fields: Any) -> DeploymentEvent:
        return await self.send(EventType.DELETING, namespace_id, model_id, **fields)

    async def deleted(self, namespace_id: str, model_id: str, **fields: Any) -> DeploymentEvent:
        return await self.send(EventType.DELETED, namespace_id, model_id, **fields)

    async def start(self) -> None:
        """Connect now instead of on the first event (optional)."""
        if self._owned is not None:
            await self._owned.start()

    async def close(self) -> None:
        if self._owned is not None:
            await self._owned.close()

    async def __aenter__(self) -> DeploymentEventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
