"""The worker refuses events that would freeze a model or carry unsafe values (real Kafka and MongoDB)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from modelreg.services.worker.applier import EventApplier
from modelreg.services.worker.consumer import DeploymentEventConsumer
from modelreg.services.worker.main import run_worker
from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import encode
from modelreg.shared.settings import Settings
from tests.conftest import eventually, read_topic
from tests.factories import BASE_TIME, event, seed_model_document
from tests.integration.test_worker import publish, stored

MAX_SEQUENCE = 2**63 - 1


def dead_letter_reasons(records: list[Any]) -> dict[bytes, str]:
    """The DLQ's records by value, with their reason."""
    return {record.value: dict(record.headers)["dlq.reason"].decode() for record in records}


async def with_sequence(db, model_id: str, sequence: int) -> dict[str, Any] | None:
    doc = await stored(db, model_id)
    return doc if doc and doc.get("last_event_sequence") == sequence else None


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # 1 s group sessions: each consumer-group join waits about half a session on the test Kafka. A batch
    # redelivered after an eviction changes nothing here: dead letters are compared by value.
    return msgspec.structs.replace(settings, worker_session_timeout_ms=1000, worker_heartbeat_interval_ms=200)


@pytest.fixture
async def run_worker_with(db) -> AsyncIterator[Callable[[Settings], None]]:
    """Start `run_worker` with the given settings; stopped at the end of the test."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []

    def start(settings: Settings) -> None:
        tasks.append(asyncio.create_task(run_worker(settings, stop)))

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_events_from_the_future_are_dead_lettered_and_real_events_still_apply(
    run_worker_with, db, producer, topics
) -> None:
    run_worker_with(topics)
    await db.custom_models.insert_one(seed_model_document(model_id="m_future"))
    ready = event("deployment.ready", 1, model_id="m_future")
    huge_sequence = event("deployment.deleting", MAX_SEQUENCE, model_id="m_future", occurred_at=BASE_TIME)
    far_date = event("deployment.ready", 2, model_id="m_future", occurred_at=datetime(9999, 1, 1, tzinfo=UTC))
    deleted = event("deployment.deleted", 3, model_id="m_future")

    await publish(producer, topics, ready, huge_sequence, far_date, deleted)

    dead = await read_topic(topics, topics.dlq_topic, expected=2)
    assert dead_letter_reasons(dead) == {
        encode(huge_sequence): "from_the_future",
        encode(far_date): "from_the_future",
    }
    assert any(str(MAX_SEQUENCE) in dict(r.headers)["dlq.error"].decode() for r in dead)
    doc = await eventually(lambda: with_sequence(db, "m_future", 3))
    # Neither froze the model: the real events after them applied, in order.
    assert doc["deployment_status"] == "not_deployed" and doc["deployed"] is False
    assert [h["sequence"] for h in doc["deployment_history"]] == [1, 3]
    assert doc["observed_at"] == deleted.occurred_at


async def test_the_skew_is_measured_from_the_consumers_clock(db, producer, topics) -> None:
    """A pinned clock: clock-derived sequences up to now + skew apply, one microsecond more does not."""
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    limit_us = int(now.timestamp() * 1_000_000) + int(topics.max_clock_skew_s * 1_000_000)
    limit_time = now + timedelta(seconds=topics.max_clock_skew_s)
    await db.custom_models.insert_many(
        [seed_model_document(model_id=m) for m in ("m_at_limit", "m_past_limit")]
    )
    at_limit = event("deployment.started", limit_us, model_id="m_at_limit", occurred_at=limit_time)
    past_limit = [
        event("deployment.started", limit_us + 1, model_id="m_past_limit", occurred_at=now),
        event(
            "deployment.started",
            5,
            model_id="m_past_limit",
            occurred_at=limit_time + timedelta(microseconds=1),
        ),
    ]
    await publish(producer, topics, at_limit, *past_limit)

    consumer = kafka.make_consumer(topics, topics.events_topic, group_id=topics.consumer_group)
    dlq_producer = kafka.make_producer(topics)
    await consumer.start()
    await dlq_producer.start()
    stop = asyncio.Event()
    worker = DeploymentEventConsumer(
        topics, consumer, dlq_producer, EventApplier(ModelStore()), clock=lambda: now
    )
    task = asyncio.create_task(worker.run(stop))
    try:
        dead = await read_topic(topics, topics.dlq_topic, expected=2)
        doc = await eventually(lambda: with_sequence(db, "m_at_limit", limit_us))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        await dlq_producer.stop()
    assert dead_letter_reasons(dead) == {encode(e): "from_the_future" for e in past_limit}
    assert doc["deployment_status"] == "pending"
    assert (await stored(db, "m_past_limit")).get("last_event_sequence") is None


async def test_unsafe_endpoints_and_control_characters_are_dead_lettered_with_reasons(
    run_worker_with, db, producer, topics
) -> None:
    prefixes = "http://serve.internal:8001, https://models.example.com/serve"
    run_worker_with(msgspec.structs.replace(topics, event_endpoint_prefixes=prefixes))
    await db.custom_models.insert_one(seed_model_document(model_id="m_values"))

    def body(sequence: int, **fields: Any) -> bytes:
        values = json.loads(encode(event("deployment.started", sequence, model_id="m_values")))
        return json.dumps({**values, **fields}).encode()

    bad = {
        body(1, endpoint="javascript:alert(document.cookie)"): "invalid_event",
        body(2, endpoint="http://user:pw@serve.internal:8001/x"): "invalid_event",
        body(3, base_image="modelreg/serve-onnx:latest\x1b[2J"): "invalid_event",
        body(4, message="fine\rforged log line"): "invalid_event",
        body(5, ray_cluster_url="127.0.0.1:6379\x00"): "invalid_event",
        body(6, ray_deployment_name="app\n"): "invalid_event",
        body(7, endpoint="http://evil.example/ns_test/m_values"): "endpoint_not_allowed",
        body(8, endpoint="https://models.example.com/serve-evil/m"): "endpoint_not_allowed",
    }
    for value in bad:
        await producer.send_and_wait(topics.events_topic, value=value, key=b"ns_test/m_values")
    good = event(
        "deployment.ready",
        9,
        model_id="m_values",
        endpoint="https://models.example.com/serve/ns_test/m_values",
        message="ready after 2 attempts:\n\tfirst replica timed out",
        ray_cluster_url="127.0.0.1:6379",
    )
    await publish(producer, topics, good)

    dead = await read_topic(topics, topics.dlq_topic, expected=len(bad))
    assert dead_letter_reasons(dead) == bad
    doc = await eventually(lambda: with_sequence(db, "m_values", 9))
    assert doc["deployment_info"]["endpoint"] == good.endpoint
    assert doc["deployment_message"] == good.message
    assert [h["sequence"] for h in doc["deployment_history"]] == [9]
