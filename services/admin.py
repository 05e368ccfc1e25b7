"""Operator actions used by the CLI: register a model document, publish an event or a command, resync."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.event_producer import DeploymentEventProducer
from modelreg.shared.contracts import (
    CommandType,
    DeploymentCommand,
    DeploymentEvent,
    ModelFormat,
    ModelKey,
    decode_command,
    encode,
)
from modelreg.shared.identifiers import check_id, check_model_id
from modelreg.shared.settings import Settings

# MongoDB (Beanie, pymongo) and the archive storage are imported by the actions that use them, so the CLI's
# publishing commands, which only speak Kafka, start without them.
if TYPE_CHECKING:
    from modelreg.shared.documents import ModelDetails, ResourceRequirementsFields


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
) -> ModelDetails:
    """Insert a model whose archive is already stored.

    Raises InvalidRegistration, or the store's ModelRegisteredError when its id or name and version is taken.
    """
    from modelreg.shared.adapters import mongo
    from modelreg.shared.adapters.mongo import ModelStore
    from modelreg.shared.adapters.storage import ArchiveLocationRefusedError, ArchiveStorage
    from modelreg.shared.documents import ModelDetails, ResourceRequirementsFields

    try:
        check_id("namespace_id", namespace_id)
        check_model_id(model_id)
        ArchiveStorage(settings).check_fetchable(archive_url)
    except (ValueError, ArchiveLocationRefusedError) as exc:
        raise InvalidRegistration(str(exc)) from None
    details = ModelDetails(
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
    client = await mongo.connect(settings)
    try:
        await ModelStore(settings.history_limit).insert_model(details)
    finally:
        await client.close()
    return details


async def publish_event(settings: Settings, event: DeploymentEvent) -> None:
    """Send one event; raises InvalidMessage for one the worker would dead-letter, KafkaError if not sent."""
    # No retry loop (see _send). The producer checks the contract's limits before it connects.
    producer = DeploymentEventProducer.from_settings(settings)
    try:
        await producer.publish(event)
    finally:
        await producer.close()


async def publish_command(settings: Settings, command: DeploymentCommand) -> None:
    """Send one command; raises InvalidMessage for one the bridge would refuse, KafkaError if not sent."""
    decode_command(command.key.kafka_key(), encode(command))
    await _send(settings, settings.commands_topic, command)


async def _send(settings: Settings, topic: str, message: kafka.Message) -> None:
    # No retry loop: aiokafka retries outages within its request timeout, and a permanent error
    # (too large, not authorized, ...) is raised to the operator at once.
    async with kafka.KafkaPublisher(settings) as publisher:
        await publisher.publish(topic, message)


async def resync_model(settings: Settings, key: ModelKey) -> DeploymentCommand | None:
    """Reset the model's sequence guard, then ask the bridge to re-announce its real Serve state.

    None when the registry has no such model (nothing is published then).
    """
    from modelreg.shared.adapters import mongo
    from modelreg.shared.adapters.mongo import ModelStore
    from modelreg.shared.documents import utc_now

    client = await mongo.connect(settings)
    try:
        now = utc_now()
        if not await ModelStore(settings.history_limit).reset_event_guard(key, now):
            return None
    finally:
        await client.close()
    command = DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=CommandType.RESYNC,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        requested_at=now,
    )
    await publish_command(settings, command)
    return command
