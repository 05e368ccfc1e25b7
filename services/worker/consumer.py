"""The worker's Kafka loop: consume → decode → apply (one guarded write per model) → dead-letter → commit.

Offsets are committed only after the batch is in MongoDB and its rejects are on the DLQ, so a crash at
any point redelivers the batch; the sequence guard makes the redelivery a no-op.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pymongo.errors import PyMongoError

from services.worker import metrics
from services.worker.applier import ConcurrentUpdateError, EventApplier
from shared.contracts import DeploymentEvent, InvalidMessage, decode_event
from shared.documents import utc_now
from shared.event_admission import AdmissionRules
from shared.retry import Stopping, retry_with_backoff
from shared.settings import Settings

T = TypeVar("T")
RETRYABLE = (PyMongoError, KafkaError, OSError, ConcurrentUpdateError)
log = structlog.get_logger("modelreg.worker")


class DeadLetter:
    """A record that can never be applied, with the reason put into its DLQ headers."""

    __slots__ = ("record", "reason", "detail")

    def __init__(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        self.record, self.reason, self.detail = record, reason, detail


class DeploymentEventConsumer:
    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        applier: EventApplier,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.applier = applier
        self.clock = clock
        self.admission = AdmissionRules.from_settings(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished and committed first."""
        while not stop.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=self.settings.worker_batch_timeout_ms,
                max_records=self.settings.worker_batch_max_records,
            )
            if not batch:
                continue
            try:
                await self.process(batch, stop)
            except Stopping:
                log.warning("stopped with an uncommitted batch; it will be redelivered")
                return

    async def process(self, batch: dict[TopicPartition, list[ConsumerRecord]], stop: asyncio.Event) -> None:
        records = [record for partition_records in batch.values() for record in partition_records]
        metrics.EVENTS_CONSUMED.inc(len(records))
        metrics.BATCH_SIZE.observe(len(records))
        decoded: list[tuple[ConsumerRecord, DeploymentEvent]] = []
        rejects: list[DeadLetter] = []
        now = self.clock()
        for record in records:
            try:
                event = decode_event(record.key, record.value)
                self.admission.check(event, now)
                decoded.append((record, event))
            except InvalidMessage as exc:
                rejects.append(DeadLetter(record, exc.reason, exc.detail))

        started = time.perf_counter()
        outcome = await self._retry("apply", lambda: self.applier.apply([e for _, e in decoded]), stop)
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_APPLIED.inc(outcome.applied)
        metrics.EVENTS_STALE.inc(outcome.stale)
        rejects += [
            DeadLetter(record, "unknown_model", f"no model {event.key} in the registry")
            for record, event in decoded
            if event.key in outcome.unknown_models
        ]
        for record, event in decoded:
            if event.key not in outcome.unknown_models:
                log.debug(
                    "event consumed",
                    event_id=str(event.event_id),
                    event_type=str(event.event_type),
                    model=str(event.key),
                    sequence=event.sequence,
                    partition=record.partition,
                    offset=record.offset,
                )
        if rejects:
            await self._retry("dead_letter", lambda: self._dead_letter(rejects), stop)

        offsets = {tp: partition_records[-1].offset + 1 for tp, partition_records in batch.items()}
        await self._retry("commit", lambda: self._commit(offsets), stop)
        self._record_lag(batch)
        log.info(
            "batch applied",
            records=len(records),
            applied=outcome.applied,
            stale=outcome.stale,
            models=outcome.models_written,
            dead_lettered=len(rejects),
            offsets={f"{tp.topic}:{tp.partition}": offset for tp, offset in offsets.items()},
        )

    async def _dead_letter(self, rejects: list[DeadLetter]) -> None:
        sends = []
        for reject in rejects:
            record = reject.record
            headers = [
                ("dlq.reason", reject.reason.encode()),
                ("dlq.error", reject.detail[:1000].encode("utf-8", "replace")),
                ("dlq.source.topic", record.topic.encode()),
                ("dlq.source.partition", str(record.partition).encode()),
                ("dlq.source.offset", str(record.offset).encode()),
            ]
            sends.append(
                await self.producer.send(
                    self.settings.dlq_topic, value=record.value, key=record.key, headers=headers
                )
            )
            log.warning(
                "record dead-lettered",
                reason=reject.reason,
                error=reject.detail[:300],
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode("utf-8", "replace")[:300] if record.key else None,
            )
        # Wait for every acknowledgement before the source offsets may be committed.
        await asyncio.gather(*sends)
        for reject in rejects:
            metrics.EVENTS_DEAD_LETTERED.labels(reason=reject.reason).inc()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner re-reads these records and the guard makes
            # them no-ops, so nothing is lost by not committing here.
            log.warning("commit refused after a rebalance; records will be redelivered", error=str(exc))

    def _record_lag(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # The fetch highwater, not end_offsets(): some brokers report the latter wrongly.
        for tp, partition_records in batch.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                lag = max(highwater - (partition_records[-1].offset + 1), 0)
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    async def _retry(self, operation: str, call: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
        return await retry_with_backoff(
            call,
            operation=operation,
            stop=stop,
            retry_on=RETRYABLE,
            max_backoff_s=self.settings.worker_retry_max_backoff_s,
            on_retry=lambda op: metrics.RETRIES.labels(operation=op).inc(),
        )
