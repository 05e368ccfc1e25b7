"""The worker's Kafka loop: consume → decode → apply (one guarded write per model) → dead-letter → commit.

Offsets are committed only after the batch is in MongoDB and its rejects are on the DLQ, so a crash at
any point redelivers the batch; the sequence guard makes the redelivery a no-op. Outages are retried;
a Kafka error no retry can fix (`shared.retry.is_permanent_error`) never is, so no record can wedge the loop.
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
from services.worker.dead_letters import DeadLetterRecord, dead_letter_record, without_payload
from shared.contracts import DeploymentEvent, InvalidMessage, decode_event
from shared.documents import utc_now
from shared.event_admission import AdmissionRules
from shared.retry import Stopping, is_permanent_error, retry_with_backoff
from shared.settings import Settings

T = TypeVar("T")
RETRYABLE = (PyMongoError, KafkaError, OSError, ConcurrentUpdateError)
log = structlog.get_logger("modelreg.worker")


class DeadLetter:
    """A record that can never be applied, with the reason put into its DLQ headers.

    `done` once the DLQ acknowledged it (or refused it for good), so a retried batch does not send it again.
    """

    __slots__ = ("record", "reason", "detail", "done")

    def __init__(self, record: ConsumerRecord, reason: str, detail: str) -> None:
        self.record, self.reason, self.detail = record, reason, detail
        self.done = False


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
        """Put every reject not yet acknowledged on the DLQ; raises (to be retried) if any send failed."""
        pending = [reject for reject in rejects if not reject.done]
        # All sends settle before a failure is raised, so a retry never overlaps a send still in flight.
        results = await asyncio.gather(*(self._deliver(reject) for reject in pending), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _deliver(self, reject: DeadLetter) -> None:
        record = reject.record
        bounded = dead_letter_record(
            key=record.key,
            value=record.value,
            reason=reject.reason,
            detail=reject.detail,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            max_value_bytes=self.settings.dlq_max_value_bytes,
        )
        where = dict(reason=reject.reason, partition=record.partition, offset=record.offset)
        for attempt in (bounded, without_payload(bounded)):
            try:
                await self._send(attempt)
            except KafkaError as exc:
                if not is_permanent_error(exc):
                    raise
                log.error("the DLQ refused a dead letter", error=repr(exc)[:500], **where)
                continue
            reject.done = True
            metrics.EVENTS_DEAD_LETTERED.labels(reason=reject.reason).inc()
            log.warning(
                "record dead-lettered",
                error=reject.detail[:300],
                key=record.key.decode("utf-8", "replace")[:300] if record.key else None,
                truncated=dict(attempt.headers).get("dlq.truncated") == b"true",
                **where,
            )
            return
        # Refused even without its payload (e.g. the DLQ topic is not writable): skipping the record is
        # the only way the partition can move on; the log and the metric say it happened.
        reject.done = True
        metrics.DEAD_LETTERS_DROPPED.labels(reason=reject.reason).inc()
        log.critical("record could not be dead-lettered and is skipped", error=reject.detail[:300], **where)

    async def _send(self, dead_letter: DeadLetterRecord) -> None:
        sent = await self.producer.send(
            self.settings.dlq_topic,
            value=dead_letter.value,
            key=dead_letter.key,
            headers=dead_letter.headers,
        )
        await sent  # the acknowledgement: only then may the source offset be committed

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
