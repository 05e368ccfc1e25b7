"""`modelreg worker`: wires MongoDB, Kafka and the applier together, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from modelreg.services.worker.applier import EventApplier
from modelreg.services.worker.clusters import ClusterHealthConsumer, ClusterWatch
from modelreg.services.worker.consumer import DeploymentEventConsumer
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.adapters.mongo import ClusterStore, ModelStore, TombstoneStore
from modelreg.shared.retry import Stopping, retry_with_backoff
from modelreg.shared.settings import Settings
from modelreg.shared.signals import stop_on_signals

log = structlog.get_logger("modelreg.worker")


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = asyncio.Event()
        stop_on_signals(stop)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.metrics_bind_host)
    backoff_s = settings.worker_retry_max_backoff_s
    try:
        client = await mongo.connect_when_available(settings, stop, backoff_s)
    except Stopping:
        return
    producer = kafka.make_producer(settings)
    consumer = kafka.make_consumer(
        settings,
        settings.events_topic,
        group_id=settings.consumer_group,
        fetch_max_wait_ms=settings.worker_fetch_max_wait_ms,
    )
    # Its own group: the health topic's partitions are balanced apart from the events'.
    health_consumer = kafka.make_consumer(
        settings, settings.cluster_health_topic, group_id=f"{settings.consumer_group}.health"
    )
    try:
        await retry_with_backoff(
            producer.start,
            operation="start_producer",
            stop=stop,
            retry_on=(KafkaError, OSError),
            max_backoff_s=backoff_s,
        )
        for started in (consumer, health_consumer):
            await retry_with_backoff(
                started.start,
                operation="start_consumer",
                stop=stop,
                retry_on=(KafkaError, OSError),
                max_backoff_s=backoff_s,
            )
        log.info("worker started", topic=settings.events_topic, group=settings.consumer_group)
        applier = EventApplier(ModelStore(settings.history_limit), tombstones=TombstoneStore())
        watch = ClusterWatch(settings, ClusterStore(), kafka.KafkaPublisher(settings, producer=producer))
        await asyncio.gather(
            DeploymentEventConsumer(settings, consumer, producer, applier).run(stop),
            ClusterHealthConsumer(settings, health_consumer, producer, watch).run(stop),
            watch.run_checks(stop, settings.cluster_check_interval_s),
        )
    except Stopping:
        pass
    finally:
        await health_consumer.stop()
        await consumer.stop()
        await producer.stop()
        await client.close()
        log.info("worker stopped")
