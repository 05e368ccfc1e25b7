"""aiokafka: producers, consumer groups and topic creation, configured from Settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.contracts import DeploymentCommand, encode
from shared.retry import is_permanent_error
from shared.settings import Settings

log = structlog.get_logger("modelreg.kafka")


def make_producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    # acks=all so an acknowledged send is on the broker; idempotence is off for brokers without it (tansu).
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
        linger_ms=5,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, *topics: str, group_id: str, **overrides) -> AIOKafkaConsumer:
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,  # commit only what has been applied
        auto_offset_reset="earliest",  # a new group starts from the beginning: nothing skipped
        session_timeout_ms=settings.worker_session_timeout_ms,
        heartbeat_interval_ms=settings.worker_heartbeat_interval_ms,
        max_poll_records=settings.worker_batch_max_records,
    )
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: Settings, topics: Iterable[str], partitions: int | None = None) -> None:
    """Create the topics if they do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=partitions or settings.topic_partitions, replication_factor=1)
            for t in topics
            if t not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


class CommandNotPublishedError(RuntimeError):
    """The broker did not acknowledge a command in time (or could not be reached)."""


class CommandPublisher:
    """Sends deployment commands to the commands topic, keyed by model so each model's commands stay ordered.

    The producer is started on first use (and again after a failed start), so a process that only needs
    Kafka for some requests still starts while the broker is down.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._producer is not None:
                return
            timeout_ms = int(self.settings.api_command_timeout_s * 1000)
            producer = make_producer(self.settings, request_timeout_ms=timeout_ms)
            try:
                await asyncio.wait_for(producer.start(), self.settings.api_command_timeout_s)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def publish(self, command: DeploymentCommand) -> None:
        """Return once the broker acknowledged the command (acks=all), else raise CommandNotPublishedError."""
        try:
            await self.start()
            assert self._producer is not None
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    self.settings.commands_topic, value=encode(command), key=command.key.kafka_key()
                ),
                self.settings.api_command_timeout_s,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            # aiokafka retries outages within the timeout; a permanent error (too large, not authorized)
            # comes at once and will not go away by itself, so it is logged as an error.
            (log.error if is_permanent_error(exc) else log.warning)(
                "command not published",
                permanent=is_permanent_error(exc),
                command_id=str(command.command_id),
                command_type=str(command.command_type),
                model=str(command.key),
                error=repr(exc)[:300],
            )
            raise CommandNotPublishedError(str(exc) or type(exc).__name__) from exc
        log.info(
            "command published",
            command_id=str(command.command_id),
            command_type=str(command.command_type),
            model=str(command.key),
        )

    async def close(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None
