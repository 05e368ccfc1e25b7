"""The worker's Kafka loop: consume → decode → apply (one guarded write per model) → dead-letter → commit.

Offsets are committed only after the batch is in MongoDB and its rejects are on the DLQ, so a crash at
any point redelivers the batch; the sequence guard makes the redelivery a no-op. Outages are retried;
a Kafka error no retry can fix (`shared.retry.is_permanent_error`) never is, so no record can wedge the loop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import datetime

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from modelreg.services.worker import metrics
from modelreg.services.worker.applier import BatchOutcome, ConcurrentUpdateError, EventApplier
from modelreg.services.worker.commands import undeploy_command
from modelreg.services.worker.dead_letters import DeadLetterRecord, dead_letter_record, without_payload
from modelreg.shared.adapters.kafka import Batch, ConsumerLoop, Offsets
from modelreg.shared.contracts import DeploymentCommand, DeploymentEvent, InvalidMessage, decode_event, encode
from modelreg.shared.documents import utc_now
from modelreg.shared.event_admission import AdmissionRules
from modelreg.shared.retry import RetryPolicy, is_permanent_error
from modelreg.shared.settings import Settings
from modelreg.shared.tombstone_rules import is_acknowledged

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

    def consumer_loop(self, stop: asyncio.Event) -> tuple[RetryPolicy, ConsumerLoop]:
        """The retry policy (stopped by `stop`, counted in the retry metric) and the batch loop on it that
        every worker consumer runs, sized by the worker's settings."""
        retry = RetryPolicy(
            stop,
            max_backoff_s=self.settings.worker_retry_max_backoff_s,
            on_retry=lambda operation: metrics.RETRIES.labels(operation=operation).inc(),
        )
        loop = ConsumerLoop(
            self.consumer,
            retry,
            timeout_ms=self.settings.worker_batch_timeout_ms,
            max_records=self.settings.worker_batch_max_records,
        )
        return retry, loop

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished and committed first."""
        retry, loop = self.consumer_loop(stop)
        await loop.run(functools.partial(self.process, retry=retry), self.committed)

    async def process(self, batch: Batch, retry: RetryPolicy) -> tuple[BatchOutcome, int]:
        """Apply the batch and dead-letter its rejects; returns the outcome and the number of rejects."""
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
        outcome = await retry.run("apply", lambda: self.applier.apply([e for _, e in decoded]), RETRYABLE)
        metrics.APPLY_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_APPLIED.inc(outcome.applied)
        metrics.EVENTS_STALE.inc(outcome.stale)
        for record, event in decoded:
            if event.key not in outcome.unknown_models:
                continue
            if is_acknowledged(event.event_type, outcome.tombstones.get(event.key), now):
                # A deleted model's late undeploy event: expected, nothing to apply, nothing to keep.
                metrics.EVENTS_TOMBSTONED.labels(event_type=str(event.event_type)).inc()
                log.info(
                    "event of a deleted model acknowledged",
                    model=str(event.key),
                    event_type=str(event.event_type),
                )
                continue
            rejects.append(DeadLetter(record, "unknown_model", f"no model {event.key} in the registry"))
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
        if outcome.undeploys:
            # After the write, before the commit: a crash in between redelivers nothing to derive them
            # from, so the clusters' health reports repeat them for any application still there.
            commands = [undeploy_command(key, cluster, now) for key, cluster in outcome.undeploys]
            await retry.run("retire_placements", lambda: self._send_commands(commands), RETRYABLE)
        if rejects:
            # Once per batch: a retried send skips the rejects the DLQ already acknowledged.
            await retry.run("dead_letter", lambda: self._dead_letter(rejects), RETRYABLE)
        return outcome, len(rejects)

    def committed(self, batch: Batch, offsets: Offsets, result: tuple[BatchOutcome, int]) -> None:
        outcome, dead_lettered = result
        self._record_lag(batch)
        log.info(
            "batch applied",
            records=sum(len(partition_records) for partition_records in batch.values()),
            applied=outcome.applied,
            stale=outcome.stale,
            models=outcome.models_written,
            dead_lettered=dead_lettered,
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

    async def _send_commands(self, commands: list[DeploymentCommand]) -> None:
        for command in commands:
            await self.producer.send_and_wait(
                self.settings.commands_topic, value=encode(command), key=command.key.kafka_key()
            )
            metrics.COMMANDS_SENT.labels(reason="retire_placement").inc()
            log.info("undeploy sent", model=str(command.key), cluster=command.cluster)

    async def _send(self, dead_letter: DeadLetterRecord) -> None:
        sent = await self.producer.send(
            self.settings.dlq_topic,
            value=dead_letter.value,
            key=dead_letter.key,
            headers=dead_letter.headers,
        )
        await sent  # the acknowledgement: only then may the source offset be committed

    def _record_lag(self, batch: Batch) -> None:
        # The fetch highwater, not end_offsets(): some brokers report the latter wrongly.
        for tp, partition_records in batch.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                lag = max(highwater - (partition_records[-1].offset + 1), 0)
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
