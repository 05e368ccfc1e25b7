"""The worker against real MongoDB- and Kafka-protocol servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from modelreg.services.worker.applier import EventApplier
from modelreg.services.worker.consumer import DeploymentEventConsumer
from modelreg.services.worker.main import run_worker
from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import DeploymentEvent, DeploymentStatus, encode
from modelreg.shared.deployment_rules import ObservedDeployment, apply_events
from modelreg.shared.settings import Settings
from tests.conftest import eventually, read_topic
from tests.factories import event, seed_model_document


@pytest.fixture
def session_ms() -> int:
    """Group session length: each consumer-group join waits about half of it on the test Kafka."""
    return 1000


@pytest.fixture
def settings(settings: Settings, session_ms: int) -> Settings:
    # 1 s sessions: a consumer evicted under load gets its batch again, which a test tolerates unless it
    # counts records the worker wrote (those keep the project's 3 s).
    return msgspec.structs.replace(
        settings, worker_session_timeout_ms=session_ms, worker_heartbeat_interval_ms=min(500, session_ms // 5)
    )


@pytest.fixture
async def worker(topics: Settings, db) -> Any:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(topics, stop))
    yield task
    stop.set()
    await asyncio.wait_for(task, 30)


async def publish(producer, settings: Settings, *events: DeploymentEvent) -> dict[int, int]:
    """Send events in order; returns the highest offset + 1 written per partition."""
    ends: dict[int, int] = {}
    for evt in events:
        meta = await producer.send_and_wait(settings.events_topic, value=encode(evt), key=evt.key.kafka_key())
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    return ends


async def stored(db, model_id: str, namespace_id: str = "ns_test") -> dict[str, Any]:
    return await db.custom_models.find_one({"namespace_id": namespace_id, "model_id": model_id})


async def committed_offsets(settings: Settings) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = consumer.partitions_for_topic(settings.events_topic) or set()
        result = {}
        for partition in partitions:
            offset = await consumer.committed(TopicPartition(settings.events_topic, partition))
            if offset is not None:
                result[partition] = offset
        return result
    finally:
        await consumer.stop()


def expected_after(*events: DeploymentEvent) -> ObservedDeployment:
    final, _ = apply_events(ObservedDeployment(), events)
    return final


async def test_every_event_type_changes_the_model_as_the_contract_says(worker, db, producer, topics) -> None:
    await db.custom_models.insert_one(seed_model_document(model_id="m_life"))
    before = await stored(db, "m_life")
    steps = [
        (
            event("deployment.started", 1, model_id="m_life", ray_deployment_name="ns_test--m_life"),
            "pending",
            False,
        ),
        (
            event(
                "deployment.ready",
                2,
                model_id="m_life",
                endpoint="http://127.0.0.1:8001/ns_test/m_life",
                base_image="modelreg/serve-onnx:latest",
                ray_cluster_url="127.0.0.1:6379",
                ray_deployment_name="ns_test--m_life",
            ),
            "deployed",
            True,
        ),
        (event("deployment.unhealthy", 3, model_id="m_life", message="replica crashed"), "unhealthy", False),
        (event("deployment.deleting", 4, model_id="m_life"), "deleting", False),
        (event("deployment.deleted", 5, model_id="m_life"), "not_deployed", False),
        (event("deployment.failed", 6, model_id="m_life", message="constructor raised"), "failed", False),
    ]
    applied: list[DeploymentEvent] = []
    previous_updated_at = before["updated_at"]
    for evt, status, deployed in steps:
        await publish(producer, topics, evt)
        applied.append(evt)

        doc = await eventually(lambda sequence=evt.sequence: _with_sequence(db, "m_life", sequence))
        assert doc["deployment_status"] == status and doc["deployed"] is deployed
        assert doc["updated_at"] > previous_updated_at
        previous_updated_at = doc["updated_at"]
        expected = expected_after(*applied)
        if expected.deployment_info is None:
            assert doc["deployment_info"] is None
        else:
            assert doc["deployment_info"]["endpoint"] == expected.deployment_info.endpoint
            assert doc["deployment_info"]["deployed_at"] == expected.deployment_info.deployed_at
        assert doc["deployment_message"] == evt.message

    doc = await stored(db, "m_life")
    # Ready set the full info; unhealthy and deleting kept it; deleted and failed cleared it.
    assert [h["event_type"] for h in doc["deployment_history"]] == [str(e.event_type) for e, _, _ in steps]
    # The seed's own fields were never touched.
    for field in ("name", "version", "model_archive_url", "model_format", "model_hash", "created_at"):
        assert doc[field] == before[field]


async def test_duplicates_reordering_and_stale_events_are_no_ops(worker, db, producer, topics) -> None:
    await db.custom_models.insert_one(seed_model_document(model_id="m_order"))
    ready = event("deployment.ready", 10, model_id="m_order")
    duplicate = msgspec.structs.replace(ready, event_id=uuid.uuid4())
    failed, started = (
        event("deployment.failed", 5, model_id="m_order"),
        event("deployment.started", 7, model_id="m_order"),
    )
    # Out of order, duplicated, and a conflicting event reusing sequence 10.
    ends = await publish(
        producer,
        topics,
        ready,
        failed,
        duplicate,
        ready,
        started,
        event("deployment.deleted", 10, model_id="m_order"),
    )
    await eventually(lambda: _with_sequence(db, "m_order", 10))
    # Judge once the worker has committed past every record published: all of them were handled.
    await eventually(lambda: _committed_to(topics, ends))
    doc = await stored(db, "m_order")
    assert doc["deployed"] is True and doc["deployment_status"] == "deployed"
    assert doc["deployment_info"]["endpoint"] == ready.endpoint
    # Each sequence applied once, in sequence order; the duplicates left no trace.
    assert [h["sequence"] for h in doc["deployment_history"]] == [
        e.sequence for e in (failed, started, ready)
    ]
    assert doc["deployment_history"][-1]["event_id"] == str(ready.event_id)

    # Once 10 is applied, anything older is stale, whichever batch it comes in.
    history_before = doc["deployment_history"]
    stale_ends = await publish(producer, topics, event("deployment.failed", 9, model_id="m_order"), ready)
    await db.custom_models.insert_one(seed_model_document(model_id="m_marker"))
    await publish(producer, topics, event("deployment.unhealthy", 1, model_id="m_marker"))
    await eventually(lambda: _with_sequence(db, "m_marker", 1))
    await eventually(lambda: _committed_to(topics, stale_ends))
    doc = await stored(db, "m_order")
    assert doc["last_event_sequence"] == 10 and doc["deployed"] is True
    assert doc["deployment_history"] == history_before


@pytest.mark.parametrize("session_ms", [3000], ids=["3s_sessions"])  # a redelivery would double the DLQ
async def test_bad_records_go_to_the_dlq_with_reasons_and_change_nothing(
    worker, db, producer, topics
) -> None:
    await db.custom_models.insert_one(seed_model_document(model_id="m_dlq"))
    before = await stored(db, "m_dlq")
    good = event("deployment.ready", 1, model_id="m_dlq")
    bad_type = json.loads(encode(event("deployment.started", 2, model_id="m_dlq")))
    bad_type["event_type"] = "deployment.exploded"
    wrong_types = json.loads(encode(event("deployment.started", 3, model_id="m_dlq")))
    wrong_types["sequence"] = "three"
    bad = [
        (b"ns_test/m_dlq", b"\x00\x01 not json at all", "undecodable"),
        (b"ns_test/m_dlq", json.dumps(wrong_types).encode(), "invalid_event"),
        (b"ns_test/m_dlq", json.dumps(bad_type).encode(), "invalid_event"),
        (b"ns_test/other_model", encode(event("deployment.failed", 4, model_id="m_dlq")), "key_mismatch"),
        (b"ns_test/ghost", encode(event("deployment.ready", 5, model_id="ghost")), "unknown_model"),
    ]
    for key, value, _ in bad:
        await producer.send_and_wait(topics.events_topic, value=value, key=key)
    await publish(producer, topics, good)

    dead = await read_topic(topics, topics.dlq_topic, expected=len(bad))
    reasons = sorted(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons == sorted(reason for _, _, reason in bad)
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq.source.topic"].decode() == topics.events_topic
        assert headers["dlq.error"]
        assert (record.key, record.value) in {(k, v) for k, v, _ in bad}

    doc = await eventually(lambda: _with_sequence(db, "m_dlq", 1))
    assert doc["deployed"] is True
    assert doc["name"] == before["name"] and doc["model_hash"] == before["model_hash"]
    assert await db.custom_models.count_documents({}) == 1  # nothing created for the unknown model


async def _with_sequence(db, model_id: str, sequence: int) -> dict[str, Any] | None:
    doc = await stored(db, model_id)
    return doc if doc and doc.get("last_event_sequence") == sequence else None


class CountingApplier(EventApplier):
    def __init__(self, store: ModelStore) -> None:
        super().__init__(store)
        self.received: list[DeploymentEvent] = []

    async def apply(self, events):
        self.received.extend(events)
        return await super().apply(events)


class DiesBeforeCommit:
    """A Kafka consumer whose batch is applied and then never committed, like a process killed there."""

    def __init__(self, consumer: AIOKafkaConsumer, applied: asyncio.Event) -> None:
        self.consumer = consumer
        self.applied = applied

    async def getmany(self, **options: Any) -> Any:
        return await self.consumer.getmany(**options)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.consumer.highwater(tp)

    async def commit(self, offsets) -> None:
        self.applied.set()
        await asyncio.Event().wait()


async def test_a_batch_applied_but_not_committed_is_redelivered_and_converges(db, producer, topics) -> None:
    models = [f"m_commit_{i}" for i in range(5)]
    await db.custom_models.insert_many([seed_model_document(model_id=m) for m in models])
    events = [
        event(t, seq, model_id=m)
        for m in models
        for seq, t in enumerate(["deployment.started", "deployment.ready"], 1)
    ]
    ends = await publish(producer, topics, *events)

    store = ModelStore(topics.history_limit)
    first_consumer = kafka.make_consumer(topics, topics.events_topic, group_id=topics.consumer_group)
    dlq_producer = kafka.make_producer(topics)
    await first_consumer.start()
    await dlq_producer.start()
    applied = asyncio.Event()
    dying = DeploymentEventConsumer(
        topics, DiesBeforeCommit(first_consumer, applied), dlq_producer, EventApplier(store)
    )
    task = asyncio.create_task(dying.run(asyncio.Event()))
    await asyncio.wait_for(applied.wait(), 60)
    state_after_first = {m: await stored(db, m) for m in models}
    task.cancel()
    await first_consumer.stop()
    await dlq_producer.stop()
    assert await committed_offsets(topics) == {}

    stop = asyncio.Event()
    counting = CountingApplier(store)
    second_consumer = kafka.make_consumer(topics, topics.events_topic, group_id=topics.consumer_group)
    await second_consumer.start()
    producer2 = kafka.make_producer(topics)
    await producer2.start()
    second = asyncio.create_task(
        DeploymentEventConsumer(topics, second_consumer, producer2, counting).run(stop)
    )
    try:
        await eventually(lambda: _committed_to(topics, ends))
    finally:
        stop.set()
        await asyncio.wait_for(second, 30)
        await second_consumer.stop()
        await producer2.stop()

    # Every event the first consumer applied came again, and changed nothing the second time.
    assert {e.event_id for e in counting.received} >= {e.event_id for e in events if e.key.model_id in models}
    for m in models:
        doc = await stored(db, m)
        assert doc["deployment_status"] == "deployed" and doc["last_event_sequence"] == 2
        assert doc["deployment_history"] == state_after_first[m]["deployment_history"]
        assert len(doc["deployment_history"]) == 2


async def _committed_to(settings: Settings, ends: dict[int, int]) -> bool:
    committed = await committed_offsets(settings)
    return all(committed.get(p, -1) >= end for p, end in ends.items())


async def test_sigterm_finishes_commits_and_exits_zero(db, producer, topics) -> None:
    models = [f"m_term_{i}" for i in range(20)]
    await db.custom_models.insert_many([seed_model_document(model_id=m) for m in models])
    events = [event("deployment.ready", seq, model_id=m) for seq in range(1, 11) for m in models]
    process = subprocess.Popen(
        [sys.executable, "-m", "modelreg.services.cli", "worker"],
        env={**os.environ, **msgspec.structs.replace(topics, log_format="json").as_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ends = await publish(producer, topics, *events)

        async def all_applied() -> bool:
            return await db.custom_models.count_documents({"last_event_sequence": 10}) == len(models)

        await eventually(all_applied, timeout_s=60)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output.decode()[-2000:]
    lines = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    assert lines[-1]["event"] == "worker stopped" and lines[-1]["service"] == "worker"
    assert any(line["event"] == "batch applied" for line in lines)
    assert await _committed_to(topics, ends)


async def test_document_with_only_seed_fields_takes_events(worker, db, producer, topics) -> None:
    deployed_elsewhere = seed_model_document(
        model_id="m_legacy",
        deployed=True,
        deployment_info={
            "endpoint": "http://old",
            "base_image": "img",
            "ray_cluster_url": None,
            "ray_deployment_name": None,
            "deployed_at": None,
        },
    )
    await db.custom_models.insert_one(deployed_elsewhere)
    await publish(producer, topics, event("deployment.deleting", 1, model_id="m_legacy"))

    doc = await eventually(lambda: _with_sequence(db, "m_legacy", 1))
    assert doc["deployed"] is False and doc["deployment_status"] == str(DeploymentStatus.DELETING)
    assert doc["deployment_info"]["endpoint"] == "http://old"  # kept
