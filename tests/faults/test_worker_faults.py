"""Fault injection with real processes: the worker, the broker and the database are SIGKILLed mid-stream.

Each test produces a stream of events, injects one fault while the worker applies it, and then requires the
stored documents to equal, field by field and history entry by history entry, what the deployment rules
compute from the produced events: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiokafka import AIOKafkaProducer
from pymongo.errors import PyMongoError

from modelreg.services.devstack import embedded
from modelreg.services.testing.infra import Infra
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.contracts import DeploymentEvent, ModelKey
from modelreg.shared.settings import Settings
from tests.conftest import eventually, make_settings
from tests.streams import (
    Expected,
    differences,
    expected_states,
    final_sequences,
    model_ids,
    publish,
    random_stream,
    reached,
    seed_documents,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

CONVERGE_TIMEOUT_S = 180


class ProofEnv:
    def __init__(self, settings: Settings, db: Any, producer: AIOKafkaProducer) -> None:
        self.settings, self.db, self.producer = settings, db, producer

    async def applied_events(self) -> int:
        """Events applied so far, summed over the models' histories (each applied event adds one entry)."""
        pipeline = [{"$project": {"n": {"$size": {"$ifNull": ["$deployment_history", []]}}}}]
        return sum([doc["n"] async for doc in await self.db.custom_models.aggregate(pipeline)])

    async def converge(self, expected: dict[ModelKey, Expected]) -> None:
        sequences = final_sequences(expected)

        async def all_final() -> bool:
            with contextlib.suppress(PyMongoError):  # the database may still be coming back
                return await reached(self.db.custom_models, sequences) == len(sequences)
            return False

        await eventually(all_final, timeout_s=CONVERGE_TIMEOUT_S, interval_s=0.5)
        # Anything still in flight (a redelivered batch) must not change the result either.
        await asyncio.sleep(1)
        docs = [doc async for doc in self.db.custom_models.find({})]
        problems = differences(expected, docs)
        assert problems == [], f"{len(problems)} differences, first: {problems[:10]}"


@contextlib.asynccontextmanager
async def proof_env(settings: Settings, models: list[str]) -> AsyncIterator[ProofEnv]:
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic])
    client = await mongo.connect(settings, server_selection_timeout_ms=30_000)
    db = client[settings.mongodb_database]
    await db.custom_models.insert_many(seed_documents(models))
    producer = kafka.make_producer(settings, request_timeout_ms=60_000)
    await producer.start()
    try:
        yield ProofEnv(settings, db, producer)
    finally:
        await producer.stop()
        with contextlib.suppress(PyMongoError):
            await client.drop_database(settings.mongodb_database)
        await client.close()


async def wait_until(check: Callable[[], Any], timeout_s: float = 120) -> None:
    async def ok() -> bool:
        return bool(await check())

    await eventually(ok, timeout_s=timeout_s, interval_s=0.1)


class Workload:
    """A random stream over `n_models` seeded models, what the rules make of it, and how many events of it
    are applied in all (the stored histories' total once converged)."""

    def __init__(self, settings: Settings, n_models: int, n_events: int, seed: int) -> None:
        self.models = model_ids(n_models)
        self.stream = random_stream(self.models, n_events, seed=seed)
        self.expected = expected_states(self.stream, settings.history_limit)
        self.total_applied = sum(len(e.history_event_ids) for e in self.expected.values())


@contextlib.asynccontextmanager
async def worker_on(
    settings: Settings, work: Workload, tmp_path: Path
) -> AsyncIterator[tuple[ProofEnv, ServiceProcess]]:
    """The workload's models seeded and one worker process (not started yet), stopped on the way out."""
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log")
    async with proof_env(settings, work.models) as env:
        try:
            yield env, worker
        finally:
            worker.stop()


async def start_mid_stream(worker: ServiceProcess, env: ProofEnv, events: Sequence[DeploymentEvent]) -> None:
    """Start the worker, publish `events` and return once it applied some of them."""
    worker.start()
    await publish(env.producer, env.settings, events)
    await wait_until(lambda: _more_than(env.applied_events(), 0))


async def test_worker_sigkilled_mid_stream_and_restarted_stores_exactly_the_rules_result(
    infra: Infra, tmp_path: Path
) -> None:
    settings = make_settings(infra)
    work = Workload(settings, n_models=200, n_events=5_000, seed=11)
    async with worker_on(settings, work, tmp_path) as (env, worker):
        # Kill as soon as the worker is part-way through the first 3,000 events.
        await start_mid_stream(worker, env, work.stream[:3_000])
        worker.kill()
        applied_at_kill = await env.applied_events()
        await publish(env.producer, settings, work.stream[3_000:])
        worker.start()
        await env.converge(work.expected)
    assert 0 < applied_at_kill < work.total_applied, "the kill did not land mid-stream"
    assert worker.starts == 2


async def test_broker_sigkilled_and_restarted_worker_reconnects_and_loses_nothing(
    infra: Infra, tmp_path: Path
) -> None:
    s3 = embedded.moto(tmp_path).start()
    broker: embedded.ServerProcess | None = None
    try:
        boto3.client(
            "s3",
            endpoint_url=s3.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket="tansu")
        broker = embedded.tansu(
            tmp_path,
            storage_engine="s3://tansu/",
            env={
                "AWS_ENDPOINT": s3.url,
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        ).start()
        settings = make_settings(infra, kafka_bootstrap_servers=broker.url, kafka_idempotent=False)
        work = Workload(settings, n_models=100, n_events=3_000, seed=12)
        async with worker_on(settings, work, tmp_path) as (env, worker):
            await start_mid_stream(worker, env, work.stream[:1_500])
            broker.kill()
            applied_at_kill = await env.applied_events()
            await asyncio.sleep(5)  # the worker meets a dead broker: fetches and commits fail
            assert worker.alive, worker.log_tail()
            broker.start()
            await publish(env.producer, settings, work.stream[1_500:])
            await env.converge(work.expected)
            assert worker.alive and worker.starts == 1, "the worker had to be restarted"
        assert 0 < applied_at_kill < work.total_applied, "the broker kill did not land mid-stream"
    finally:
        if broker is not None:
            broker.kill()
        s3.kill()


async def test_database_down_for_ten_seconds_mid_stream_no_crash_nothing_lost(
    infra: Infra, tmp_path: Path
) -> None:
    database = embedded.secantus(tmp_path / "mongo", log_dir=tmp_path).start()
    try:
        settings = make_settings(infra, mongodb_url=database.url)
        work = Workload(settings, n_models=100, n_events=3_000, seed=13)
        async with worker_on(settings, work, tmp_path) as (env, worker):
            await start_mid_stream(worker, env, work.stream[:1_500])
            database.kill()
            down_since = time.monotonic()
            # Events keep arriving while the database is away.
            await publish(env.producer, settings, work.stream[1_500:2_500])
            await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_since)))
            assert worker.alive, worker.log_tail()
            database.start()
            applied_after_outage = await _applied_when_back(env)
            await publish(env.producer, settings, work.stream[2_500:])
            await env.converge(work.expected)
            assert worker.alive and worker.starts == 1, "the worker had to be restarted"
        assert 0 < applied_after_outage < work.total_applied, "the outage did not land mid-stream"
        retries = [line for line in worker.log_lines() if line.get("event") == "operation failed, retrying"]
        assert retries, "the worker never noticed the database was down"
    finally:
        database.kill()


async def test_two_workers_one_sigkilled_the_other_takes_its_partitions(infra: Infra, tmp_path: Path) -> None:
    # tansu evicts a member that stopped heartbeating after about twice the session timeout.
    settings = make_settings(infra, worker_session_timeout_ms=4_000, worker_heartbeat_interval_ms=500)
    work = Workload(settings, n_models=150, n_events=4_000, seed=14)
    first = ServiceProcess("worker", settings, tmp_path / "worker-a.log")
    second = ServiceProcess("worker", settings, tmp_path / "worker-b.log")
    async with proof_env(settings, work.models) as env:
        try:
            first.start()
            second.start()
            # Both consumers started (on a loaded machine a process may take seconds to get there), then
            # trickle the stream until both members have applied a batch, i.e. both own partitions.
            await wait_until(lambda: _all_started(first, second))
            sent = 0
            while not (_partitions_handled(first) and _partitions_handled(second)):
                assert sent < 2_000, "both workers never got partitions"
                await publish(env.producer, settings, work.stream[sent : sent + 50])
                sent += 50
                await asyncio.sleep(0.3)
            victim_partitions = _partitions_handled(second)
            survivor_batches_before = len(first.events_logged("batch applied"))
            second.kill()
            await publish(env.producer, settings, work.stream[sent:])
            await env.converge(work.expected)
            assert first.alive and first.starts == 1
        finally:
            first.stop()
            second.stop()
    taken_over = _partitions_handled(first, after=survivor_batches_before)
    assert victim_partitions & taken_over, (
        f"the survivor never consumed the killed worker's partitions {victim_partitions}"
    )


async def _all_started(*workers: ServiceProcess) -> bool:
    """Every worker logged that its consumers started (a dead one fails with its log)."""
    for worker in workers:
        assert worker.alive, worker.log_tail()
    return all(worker.events_logged("worker started") for worker in workers)


def _partitions_handled(worker: ServiceProcess, after: int = 0) -> set[str]:
    """Partitions ("topic:partition") the worker logged a batch for, counting batches from `after` on."""
    batches = worker.events_logged("batch applied")[after:]
    return {partition for line in batches for partition in line.get("offsets", {})}


async def _more_than(count: Any, threshold: int) -> bool:
    return await count > threshold


async def _applied_when_back(env: ProofEnv) -> int:
    """Applied events once the database answers again (wrapped in a tuple: 0 is a valid answer)."""

    async def count() -> tuple[int] | None:
        try:
            return (await env.applied_events(),)
        except PyMongoError:
            return None

    return (await eventually(count, timeout_s=60))[0]
