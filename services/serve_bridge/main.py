"""`modelreg bridge`: wires Kafka, MongoDB (read only), archive storage and Ray Serve together."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from modelreg.services.serve_bridge.bridge import build_bridge
from modelreg.services.serve_bridge.commands import COMMANDS_PER_BATCH
from modelreg.services.serve_bridge.events import EventPublisher
from modelreg.services.serve_bridge.naming import bridge_consumer_group
from modelreg.services.serve_bridge.ray_calls import RayCalls
from modelreg.services.serve_bridge.ray_dashboard import RayDashboardAdapter
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.retry import RetryPolicy, Stopping
from modelreg.shared.settings import Settings
from modelreg.shared.signals import stop_on_signals

log = structlog.get_logger("modelreg.bridge")
# A command may take long (a large archive); the consumer must not be thrown out of its group meanwhile.
MAX_POLL_INTERVAL_MS = 30 * 60 * 1000


async def run_bridge(settings: Settings, stop: asyncio.Event | None = None) -> None:
    adapter = RayDashboardAdapter(settings)  # refuses an address that is not a dashboard URL
    if stop is None:
        stop = asyncio.Event()
        stop_on_signals(stop)
    if settings.bridge_metrics_port:
        start_http_server(settings.bridge_metrics_port, addr=settings.metrics_bind_host)
    retry = RetryPolicy(stop, max_backoff_s=settings.bridge_retry_max_backoff_s)
    try:
        client = await mongo.connect_when_available(settings, stop, settings.bridge_retry_max_backoff_s)
    except Stopping:
        return
    publisher = kafka.KafkaPublisher(settings)
    consumer = kafka.make_consumer(
        settings,
        settings.commands_topic,
        group_id=bridge_consumer_group(settings.bridge_consumer_group, settings.bridge_cluster),
        max_poll_records=COMMANDS_PER_BATCH,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        fetch_max_wait_ms=settings.bridge_fetch_max_wait_ms,
    )
    calls = RayCalls(adapter, settings.bridge_ray_timeout_s)
    bridge = build_bridge(
        settings,
        calls,
        EventPublisher(settings, publisher),
        ModelStore(settings.history_limit),
        ArchiveStorage(settings),
        stop,
        health_publisher=publisher,
    )
    tasks: list[asyncio.Task[None]] = []
    try:
        await retry.run("start_producer", publisher.start, (KafkaError, OSError))
        await bridge.start()
        await retry.run("start_consumer", consumer.start, (KafkaError, OSError))
        log.info(
            "bridge started",
            cluster=settings.bridge_cluster,
            commands=settings.commands_topic,
            events=settings.events_topic,
        )
        tasks = [
            asyncio.create_task(bridge.watcher.run(), name="watcher"),
            asyncio.create_task(bridge.commands.run(consumer), name="commands"),
        ]
        if bridge.health is not None:
            tasks.append(asyncio.create_task(bridge.health.run(), name="health"))
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        for task in done:
            if task is not stopped and (error := task.exception()) is not None:
                raise error
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
        await publisher.close()
        await client.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bridge.session.close(), timeout=10)
        calls.shutdown()
        log.info("bridge stopped")
