"""Operator actions used by the CLI: register a model document, publish an event."""

from __future__ import annotations

from shared.adapters import kafka, mongo
from shared.contracts import DeploymentEvent, ModelFormat, encode
from shared.documents import CustomModelDocument
from shared.settings import Settings


async def register_model(
    settings: Settings,
    *,
    namespace_id: str,
    model_id: str,
    name: str,
    version: str,
    model_format: str,
    archive_url: str,
    model_hash: str,
) -> CustomModelDocument:
    client = await mongo.connect(settings)
    try:
        document = CustomModelDocument(
            model_id=model_id,
            namespace_id=namespace_id,
            name=name,
            version=version,
            model_archive_url=archive_url,
            model_format=ModelFormat(model_format),
            model_hash=model_hash,
        )
        return await document.insert()
    finally:
        await client.close()


async def publish_event(settings: Settings, event: DeploymentEvent) -> None:
    producer = kafka.make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.events_topic, value=encode(event), key=event.key.kafka_key())
    finally:
        await producer.stop()
