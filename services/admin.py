"""Operator actions used by the CLI: register a model document, publish an event or a command."""

from __future__ import annotations

from shared.adapters import kafka, mongo
from shared.adapters.storage import ArchiveLocationRefusedError, ArchiveStorage
from shared.contracts import DeploymentCommand, DeploymentEvent, ModelFormat, encode
from shared.documents import CustomModelDocument, ResourceRequirementsFields
from shared.identifiers import check_id
from shared.settings import Settings


class InvalidRegistration(ValueError):
    """`modelreg models register` was given something the registry must never store."""


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
    resource_requirements: ResourceRequirementsFields | None = None,
    task_type: str | None = None,
) -> CustomModelDocument:
    try:
        check_id("namespace_id", namespace_id)
        check_id("model_id", model_id)
        ArchiveStorage(settings).check_fetchable(archive_url)
    except (ValueError, ArchiveLocationRefusedError) as exc:
        raise InvalidRegistration(str(exc)) from None
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
            resource_requirements=resource_requirements or ResourceRequirementsFields(),
            task_type=task_type,
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


async def publish_command(settings: Settings, command: DeploymentCommand) -> None:
    producer = kafka.make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.commands_topic, value=encode(command), key=command.key.kafka_key()
        )
    finally:
        await producer.stop()
