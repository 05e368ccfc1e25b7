"""No record can wedge the worker: huge rejects, DLQ send failures, retried batches (real servers)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, TopicAuthorizationFailedError

from modelreg.services.worker import metrics
from modelreg.services.worker.applier import EventApplier
from modelreg.services.worker.consumer import DeploymentEventConsumer
from modelreg.services.worker.main import run_worker
from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import DeploymentEvent, encode
from modelreg.shared.settings import Settings
from tests.conftest import eventually, read_topic
from tests.factories import event, seed_model_document
from tests.integration.test_worker import _committed_to, _with_sequence

# As in the tester's report: an event of ~1 MiB, which the broker takes, but whose DLQ copy with its headers
# would be over the worker producer's 1 MiB max_request_size.
HUGE_EVENT_BYTES = 1_048_500


def huge_event(model_id: str, sequence: int) -> bytes:
    base = event("deployment.started", sequence, model_id=model_id, endpoint="http://x/")
    padding = "a" * (HUGE_EVENT_BYTES - len(encode(base)))
    value = encode(msgspec.structs.replace(base, endpoint="http://x/" + padding))
    assert len(value) == HUGE_EVENT_BYTES
    return value


@pytest.fixture
async def running_worker(topics: Settings, db) -> Any:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(topics, stop))
    yield task
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.fixture
async def big_producer(topics: Settings) -> Any:
    producer = kafka.make_producer(topics, max_request_size=2 * 1024 * 1024)
    await producer.start()
    yield producer
    await producer.stop()


async def send(
    producer: AIOKafkaProducer, settings: Settings, partition: int, key: bytes, value: bytes
) -> int:
    meta = await producer.send_and_wait(settings.events_topic, value=value, key=key, partition=partition)
    return meta.offset + 1


async def send_event(
    producer: AIOKafkaProducer, settings: Settings, partition: int, evt: DeploymentEvent
) -> int:
    return await send(producer, settings, partition, evt.key.kafka_key(), encode(evt))


class DlqProducer:
    """The worker's producer, with DLQ sends failing as `refuse(call_number, headers, value)` decides."""

    def __init__(self, producer: AIOKafkaProducer, settings: Settings, refuse) -> None:
        self.producer, self.settings, self.refuse = producer, settings, refuse
        self.calls = 0
        self.refused: list[BaseException] = []

    async def send(self, topic: str, value=None, key=None, headers=None):
        if topic == self.settings.dlq_topic:
            self.calls += 1
            error = self.refuse(self.calls, dict(headers or []), value)
            if error is not None:
                self.refused.append(error)
                raise error
        return await self.producer.send(topic, value=value, key=key, headers=headers)


async def run_consumer(settings: Settings, producer_wrapper, ends: dict[int, int]) -> None:
    """Run a DeploymentEventConsumer (fresh group) until it committed up to `ends`."""
    consumer = kafka.make_consumer(settings, settings.events_topic, group_id=settings.consumer_group)
    await consumer.start()
    stop = asyncio.Event()
    loop = DeploymentEventConsumer(settings, consumer, producer_wrapper, EventApplier(ModelStore(100)))
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(lambda: _committed_to(settings, ends), timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()


async def test_a_huge_reject_is_dead_lettered_truncated_and_a_retried_batch_sends_each_reject_once(
    db, topics, producer, big_producer
) -> None:
    models = ["m_wedge", "m_other_1", "m_other_2"]
    await db.custom_models.insert_many([seed_model_document(model_id=m) for m in models])
    huge = huge_event("m_wedge", 2)
    rejects = [
        (b"ns_test/m_wedge", b"\x00 not json", "undecodable"),
        (b"ns_test/ghost", encode(event("deployment.ready", 1, model_id="ghost")), "unknown_model"),
        (b"ns_test/m_wedge", huge, "invalid_event"),
        (b"ns_test/other", encode(event("deployment.failed", 9, model_id="m_wedge")), "key_mismatch"),
    ]
    # Partition 0: good events of m_wedge around the rejects; partitions 1 and 2: other models' events.
    ends: dict[int, int] = {}
    ends[0] = await send_event(producer, topics, 0, event("deployment.started", 1, model_id="m_wedge"))
    for key, value, _ in rejects:
        ends[0] = await send(big_producer, topics, 0, key, value)
    ends[0] = await send_event(producer, topics, 0, event("deployment.ready", 3, model_id="m_wedge"))
    for partition, model in ((1, "m_other_1"), (2, "m_other_2")):
        for sequence, event_type in enumerate(("deployment.started", "deployment.ready"), 1):
            ends[partition] = await send_event(
                producer, topics, partition, event(event_type, sequence, model_id=model)
            )

    # The second DLQ send of the first attempt fails as in an outage: the batch is retried.
    worker_producer = kafka.make_producer(topics)
    await worker_producer.start()
    flaky = DlqProducer(
        worker_producer,
        topics,
        lambda call, headers, value: KafkaConnectionError("down") if call == 2 else None,
    )
    try:
        await run_consumer(topics, flaky, ends)
    finally:
        await worker_producer.stop()

    assert len(flaky.refused) == 1  # the retry happened
    for model, sequence in (("m_wedge", 3), ("m_other_1", 2), ("m_other_2", 2)):
        doc = await _with_sequence(db, model, sequence)
        assert doc is not None and doc["deployment_status"] == "deployed", model
    assert [h["sequence"] for h in (await _with_sequence(db, "m_wedge", 3))["deployment_history"]] == [1, 3]

    dead = await read_topic(topics, topics.dlq_topic, expected=len(rejects))
    assert Counter(dict(r.headers)["dlq.source.offset"] for r in dead).most_common(1)[0][1] == 1
    assert sorted(dict(r.headers)["dlq.reason"].decode() for r in dead) == sorted(r for _, _, r in rejects)
    big = next(r for r in dead if dict(r.headers)["dlq.reason"] == b"invalid_event")
    headers = dict(big.headers)
    assert headers["dlq.truncated"] == b"true"
    assert headers["dlq.original_size"] == str(len(huge)).encode()
    assert big.value == huge[: topics.dlq_max_value_bytes] and big.key == b"ns_test/m_wedge"
    assert headers["dlq.source.topic"].decode() == topics.events_topic
    assert headers["dlq.source.partition"] == b"0"
    for record in dead:
        if record is not big:
            assert "dlq.truncated" not in dict(record.headers)
            assert (record.key, record.value) in {(k, v) for k, v, _ in rejects}


async def test_a_fresh_consumer_group_gets_past_the_huge_record(
    running_worker, db, topics, producer, big_producer
) -> None:
    await db.custom_models.insert_one(seed_model_document(model_id="m_fresh"))
    huge = huge_event("m_fresh", 2)
    ends = {0: await send_event(producer, topics, 0, event("deployment.started", 1, model_id="m_fresh"))}
    ends[0] = await send(big_producer, topics, 0, b"ns_test/m_fresh", huge)
    ends[0] = await send_event(producer, topics, 0, event("deployment.ready", 3, model_id="m_fresh"))

    doc = await eventually(lambda: _with_sequence(db, "m_fresh", 3), timeout_s=60)
    assert doc["deployment_status"] == "deployed"
    await eventually(lambda: _committed_to(topics, ends), timeout_s=60)
    (dead,) = await read_topic(topics, topics.dlq_topic, expected=1)
    assert dict(dead.headers)["dlq.truncated"] == b"true" and len(dead.value) == topics.dlq_max_value_bytes


async def test_a_dead_letter_the_dlq_refuses_goes_without_its_payload_or_is_skipped(
    db, topics, producer
) -> None:
    await db.custom_models.insert_one(seed_model_document(model_id="m_refused"))
    ends = {0: await send(producer, topics, 0, b"ns_test/m_refused", b"not json, refused whole")}
    ends[0] = await send(producer, topics, 0, b"ns_test/m_refused", b"{not json, refused always")
    ends[0] = await send_event(producer, topics, 0, event("deployment.ready", 1, model_id="m_refused"))

    def refuse(call: int, headers: dict[str, bytes], value: bytes | None) -> BaseException | None:
        if value:
            return MessageSizeTooLargeError("larger than the broker's message.max.bytes")
        if headers["dlq.source.offset"] == b"1":
            return TopicAuthorizationFailedError()
        return None

    dropped_before = metrics.DEAD_LETTERS_DROPPED.labels(reason="undecodable")._value.get()
    worker_producer = kafka.make_producer(topics)
    await worker_producer.start()
    refusing = DlqProducer(worker_producer, topics, refuse)
    try:
        await run_consumer(topics, refusing, ends)
    finally:
        await worker_producer.stop()

    assert (await _with_sequence(db, "m_refused", 1))["deployed"] is True
    (dead,) = await read_topic(topics, topics.dlq_topic, expected=1)
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (None, b"")
    assert headers["dlq.source.offset"] == b"0" and headers["dlq.truncated"] == b"true"
    assert headers["dlq.original_size"] == str(len(b"not json, refused whole")).encode()
    # Each refusal was final: nothing was tried twice.
    assert len(refusing.refused) == 3
    assert metrics.DEAD_LETTERS_DROPPED.labels(reason="undecodable")._value.get() == dropped_before + 1
