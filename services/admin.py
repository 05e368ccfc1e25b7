"""Operator actions used by the CLI: register a model document, publish an event or a command, resync.

Registrations and deploy/undeploy commands are recorded in the audit trail as the API's writes are (`via`
cli, no key prefix): written before the write, settled after it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.event_producer import DeploymentEventProducer
from modelreg.shared.audit import AuditAction
from modelreg.shared.contracts import (
    CommandType,
    DeploymentCommand,
    DeploymentEvent,
    InvalidMessage,
    ModelFormat,
    ModelKey,
    decode_command,
    encode,
)
from modelreg.shared.identifiers import check_id, check_model_id
from modelreg.shared.settings import Settings

# MongoDB (Beanie, pymongo) and the archive storage are imported by the actions that use them, so
# `modelreg events publish`, which only speaks Kafka, starts without them.
if TYPE_CHECKING:
    from modelreg.services.audit.recorder import Audit
    from modelreg.shared.documents import ModelDetails, ResourceRequirementsFields

COMMAND_ACTIONS = {
    CommandType.DEPLOY: AuditAction.MODEL_DEPLOY,
    CommandType.UNDEPLOY: AuditAction.MODEL_UNDEPLOY,
}


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
    audited: bool = True,
) -> ModelDetails:
    """Insert a model whose archive is already stored; recorded as `model.upload` unless not `audited`.

    Raises InvalidRegistration, or the store's ModelRegisteredError when its id or name and version is taken.
    """
    from modelreg.services.audit.recorder import NOT_AUDITED
    from modelreg.shared.adapters import mongo
    from modelreg.shared.adapters.mongo import DuplicateModelError, DuplicateModelIdError, ModelStore
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

    def taken(exc: BaseException) -> str | None:  # the API's codes for the same refusals
        if isinstance(exc, DuplicateModelError):
            return "model_version_exists"
        return "model_id_taken" if isinstance(exc, DuplicateModelIdError) else None

    client = await mongo.connect(settings)
    try:
        async with (_audit() if audited else NOT_AUDITED).recording(
            AuditAction.MODEL_UPLOAD,
            [namespace_id],
            model_id=model_id,
            target={"name": name, "version": version},
            details={"model_hash": model_hash, "archive_url": archive_url},
            refusal=taken,
        ):
            await ModelStore(settings.history_limit).insert_model(details)
    finally:
        await client.close()
    return details


def _audit() -> Audit:
    from modelreg.services.audit.recorder import Audit
    from modelreg.shared.adapters.mongo import AuditStore

    return Audit(AuditStore())


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


def contract_refusal(exc: BaseException) -> str | None:
    """A command the contract refuses was refused (nothing sent): its reason is the entry's code."""
    return exc.reason if isinstance(exc, InvalidMessage) else None


async def request_deployment(settings: Settings, command: DeploymentCommand) -> None:
    """Publish a deploy or undeploy command with its audit entry (as publish_command raises); MongoDB must
    be connected (`mongo.connect`), as `modelreg models deploy --wait` is while it follows the model."""
    recording = _audit().recording(
        COMMAND_ACTIONS[command.command_type],
        [command.namespace_id],
        model_id=command.model_id,
        refusal=contract_refusal,
    )
    async with recording as note:
        await publish_command(settings, command)
        note.details.update(command_id=str(command.command_id), sent=True)


async def connect_and_request_deployment(settings: Settings, command: DeploymentCommand) -> None:
    """request_deployment with its own MongoDB connection."""
    from modelreg.shared.adapters import mongo

    client = await mongo.connect(settings)
    try:
        await request_deployment(settings, command)
    finally:
        await client.close()


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
