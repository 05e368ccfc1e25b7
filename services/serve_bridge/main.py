"""`modelreg bridge`: wires Kafka, MongoDB (read only), archive storage and Ray Serve together."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from services.serve_bridge.events import EventPublisher
from services.serve_bridge.ray_serve import RayServeAdapter
from services.serve_bridge.service import BridgeService, RayCalls
from shared.adapters import kafka, mongo
from shared.adapters.mongo import ModelStore
from shared.adapters.storage import ArchiveStorage
from shared.retry import Stopping, retry_with_backoff
from shared.settings import Settings
from shared.signals import stop_on_signals

log = structlog.get_logger("modelreg.bridge")
# A command may take long (a large archive); the consumer must not be thrown out of its group meanwhile.
MAX_POLL_INTERVAL_MS = 30 * 60 * 1000


async def run_bridge(settings: Settings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = asyncio.Event()
        stop_on_signals(stop)
    if settings.bridge_metrics_port:
        start_http_server(settings.bridge_metrics_port, addr=settings.metrics_bind_host)
    retry = dict(stop=stop, max_backoff_s=settings.bridge_retry_max_backoff_s)
    try:
        client = await mongo.connect_when_available(settings, stop, settings.bridge_retry_max_backoff_s)
    except Stopping:
        return
    producer = kafka.make_producer(settings)
    consumer = kafka.make_consumer(
        settings,
        settings.commands_topic,
        group_id=settings.bridge_consumer_group,
        max_poll_records=50,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
    )
    ray = RayCalls(RayServeAdapter(settings), settings.bridge_ray_timeout_s)
    bridge = BridgeService(
        settings,
        ray,
        EventPublisher(settings, producer),
        ModelStore(settings.history_limit),
        ArchiveStorage(settings),
        stop,
    )
    tasks: list[asyncio.Task] = []
    try:
        await retry_with_backoff(
            producer.start, operation="start_producer", retry_on=(KafkaError, OSError), **retry
        )
        await bridge.start()
        await retry_with_backoff(
            consumer.start, operation="start_consumer", retry_on=(KafkaError, OSError), **retry
        )
        log.info("bridge started", commands=settings.commands_topic, events=settings.events_topic)
        tasks = [
            asyncio.create_task(bridge.run_watcher(), name="watcher"),
            asyncio.create_task(bridge.run_commands(consumer), name="commands"),
        ]
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        for task in done:
            if task is not stopped and task.exception() is not None:
                raise task.exception()
    except Stopping:
        pass
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Stopping, Exception):
                await task
        await consumer.stop()
        await producer.stop()
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ray.call(ray.adapter.close), timeout=10)
        ray.shutdown()
        log.info("bridge stopped")
