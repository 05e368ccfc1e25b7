"""The bridge against the real Kafka-protocol server: no command wedges it, no event send retries forever."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError

from modelreg.services.serve_bridge.events import EventPublisher
from modelreg.services.serve_bridge.reporting import Reporter
from modelreg.shared.adapters import kafka
from modelreg.shared.contracts import EventType, ModelKey
from modelreg.shared.retry import RetryPolicy
from modelreg.shared.settings import Settings
from tests.conftest import eventually
from tests.fakes import FakeServe, InMemoryModels, make_bridge


async def _committed(settings: Settings, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.bridge_consumer_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(settings.commands_topic, partition))
    finally:
        await consumer.stop()


async def test_huge_and_malformed_commands_are_refused_and_committed(topics: Settings) -> None:
    settings = topics
    big_producer = kafka.make_producer(settings, max_request_size=2 * 1024 * 1024)
    await big_producer.start()
    try:
        end = 0
        for key, value in (
            (b"ns_test/m_cmd", b'{"command_id": "' + b"x" * 1_048_000 + b'"}'),  # ~1 MiB, the broker takes it
            (b"ns_test/m_cmd", b"\xff not json"),
            (b"ns_test/m_cmd", b'{"command_type": "explode"}'),
        ):
            meta = await big_producer.send_and_wait(
                settings.commands_topic, value=value, key=key, partition=1
            )
            end = meta.offset + 1
    finally:
        await big_producer.stop()

    # Refused commands never reach Ray, MongoDB or the event producer.
    stop = asyncio.Event()
    serve = FakeServe()
    bridge, sent, calls = make_bridge(settings, serve, InMemoryModels(), stop=stop)
    consumer = kafka.make_consumer(settings, settings.commands_topic, group_id=settings.bridge_consumer_group)
    await consumer.start()
    task = asyncio.create_task(bridge.commands.run(consumer))
    try:
        await eventually(lambda: _reached(settings, end), timeout_s=60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await consumer.stop()
        calls.shutdown()
    assert sent.sent == [] and serve.deployed == [] and serve.deleted == []


async def _reached(settings: Settings, end: int) -> bool:
    return (await _committed(settings, 1) or 0) >= end


async def test_an_event_the_broker_can_never_take_fails_the_publish_instead_of_retrying(
    topics: Settings,
) -> None:
    # A producer whose request limit no event fits in stands for any permanent refusal.
    publisher = kafka.KafkaPublisher(topics, max_request_size=64)
    await publisher.start()
    calls = 0

    class CountingPublisher(EventPublisher):
        async def publish(self, event) -> None:
            nonlocal calls
            calls += 1
            await super().publish(event)

    reporter = Reporter(topics, CountingPublisher(topics, publisher), RetryPolicy(asyncio.Event()))
    try:
        with pytest.raises(MessageSizeTooLargeError):
            await reporter.publish(ModelKey("ns_test", "m_big"), EventType.STARTED, model_format="onnx")
    finally:
        await publisher.close()
    assert calls == 1
