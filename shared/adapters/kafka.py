"""aiokafka: producers, consumer groups and topic creation, configured from Settings.

The only Kafka loop (`ConsumerLoop`: fetch a batch, handle it, commit it) and the only publisher
(`KafkaPublisher`: keyed msgspec messages, acks=all) of the project live here.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, TopicAlreadyExistsError

from modelreg.shared.contracts import DeploymentCommand, DeploymentEvent, encode
from modelreg.shared.retry import RetryPolicy, Stopping, is_permanent_error
from modelreg.shared.settings import Settings

R = TypeVar("R")
Batch = dict[TopicPartition, list[ConsumerRecord]]
Offsets = dict[TopicPartition, int]
# Keyed by model: one model's messages share a partition, so their order holds.
Message = DeploymentEvent | DeploymentCommand
log = structlog.get_logger("modelreg.kafka")


def make_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    # acks=all so an acknowledged send is on the broker; idempotence is off for brokers without it (tansu).
    options = dict(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
        linger_ms=5,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, *topics: str, group_id: str, **overrides: object) -> AIOKafkaConsumer:
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


class Publisher(Protocol):
    """Where messages go; `KafkaPublisher` in production, a recording fake in unit tests."""

    async def publish(self, topic: str, message: Message) -> None: ...


class KafkaPublisher:
    """Sends msgspec messages keyed by their model, each acknowledged by all in-sync replicas (acks=all).

    The producer is started on first use (and again after a failed start), so a process that only needs
    Kafka for some requests still starts while the broker is down. `timeout_s` bounds the start and each
    send. aiokafka retries outages within its request timeout; a Kafka error is raised as it is, and
    `shared.retry.is_permanent_error` tells the ones no retry can fix (callers' retries raise those at once).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout_s: float | None = None,
        producer: AIOKafkaProducer | None = None,
        **producer_overrides: object,
    ) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._overrides = producer_overrides
        self._producer = producer  # given: started and stopped by its owner
        self._owned = producer is None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._producer is not None:
                return
            producer = make_producer(self.settings, **self._overrides)
            try:
                await asyncio.wait_for(producer.start(), self.timeout_s)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def publish(self, topic: str, message: Message) -> None:
        """Return once the broker acknowledged the message."""
        await self.start()
        assert self._producer is not None
        send = self._producer.send_and_wait(topic, value=encode(message), key=message.key.kafka_key())
        await asyncio.wait_for(send, self.timeout_s)

    async def publish_keyed(self, topic: str, key: bytes, value: bytes) -> None:
        """Publish an already encoded record (e.g. a cluster health report keyed by its cluster)."""
        await self.start()
        assert self._producer is not None
        await asyncio.wait_for(self._producer.send_and_wait(topic, value=value, key=key), self.timeout_s)

    async def publish_all(self, topic: str, messages: Sequence[Message]) -> None:
        """Send every message in order, then wait for all acknowledgements (faster than one by one)."""
        await self.start()
        assert self._producer is not None
        acks = [
            await self._producer.send(topic, value=encode(message), key=message.key.kafka_key())
            for message in messages
        ]
        await asyncio.gather(*acks)

    async def close(self) -> None:
        async with self._lock:
            if self._producer is not None and self._owned:
                await self._producer.stop()
                self._producer = None

    async def __aenter__(self) -> KafkaPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class CommandNotPublishedError(RuntimeError):
    """The broker did not acknowledge a command in time (or could not be reached)."""


class CommandPublisher:
    """Sends deployment commands to the commands topic, within `MODELREG_API_COMMAND_TIMEOUT_S`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._publisher = KafkaPublisher(
            settings,
            timeout_s=settings.api_command_timeout_s,
            request_timeout_ms=int(settings.api_command_timeout_s * 1000),
        )

    async def start(self) -> None:
        await self._publisher.start()

    async def publish(self, command: DeploymentCommand) -> None:
        """Return once the broker acknowledged the command (acks=all), else raise CommandNotPublishedError."""
        try:
            await self._publisher.publish(self.settings.commands_topic, command)
        except (KafkaError, OSError, TimeoutError) as exc:
            # A permanent error (too large, not authorized) comes at once and will not go away by itself,
            # so it is logged as an error.
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
        await self._publisher.close()


def next_offsets(batch: Batch) -> Offsets:
    """The offsets to commit once every record of the batch has been handled."""
    return {tp: records[-1].offset + 1 for tp, records in batch.items()}


class ConsumerLoop:
    """Batch by batch: fetch, hand the batch over, commit its offsets once it has been handled.

    A crash before the commit redelivers the batch, so handlers must be idempotent. Commits are retried
    through outages with the process's retry policy (a permanent Kafka error is raised at once); a commit
    refused after a rebalance is skipped, as the partitions' new owner redelivers the batch.
    """

    def __init__(
        self, consumer: AIOKafkaConsumer, retry: RetryPolicy, *, timeout_ms: int, max_records: int
    ) -> None:
        self.consumer = consumer
        self.retry = retry
        self.timeout_ms = timeout_ms
        self.max_records = max_records

    async def run(
        self,
        handle: Callable[[Batch], Awaitable[R]],
        after_commit: Callable[[Batch, Offsets, R], None] | None = None,
    ) -> None:
        """Until the retry policy's stop is set; the batch in hand is finished and committed first."""
        while not self.retry.stop.is_set():
            batch = await self.consumer.getmany(timeout_ms=self.timeout_ms, max_records=self.max_records)
            if not batch:
                continue
            offsets = next_offsets(batch)
            try:
                outcome = await handle(batch)
                await self.retry.run("commit", functools.partial(self.commit, offsets), (KafkaError, OSError))
            except Stopping:
                log.warning("stopped with an uncommitted batch; it will be redelivered")
                return
            if after_commit is not None:
                after_commit(batch, offsets, outcome)

    async def commit(self, offsets: Offsets) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner re-reads these records, so nothing is lost.
            log.warning("commit refused after a rebalance; the batch will be redelivered", error=str(exc))
