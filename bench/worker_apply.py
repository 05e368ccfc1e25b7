"""Write path: events pushed to the topic until the DB shows every model's last sequence, vs. raw updates."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from bench.figures import Figure, figure, joined_failures, ratio, unseen_failure
from bench.read_api import NAMESPACE, PeakRss, model_document
from bench.stack import BenchStack
from bench.tables import Table
from modelreg.shared.adapters import kafka
from modelreg.shared.contracts import DeploymentEvent, EventType, encode

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
# The wait for the worker gives up when it applied no further event for this long.
STALL_S = 60
# What the worker's events write into a model: unset, a model is as registered and every event is new to it
# (the sequence guard is per cluster: `cluster_sequences`, not only `last_event_sequence`).
OBSERVED_FIELDS = (
    "last_event_sequence",
    "cluster_sequences",
    "deployment_history",
    "deployment_status",
)


def event_stream(ids: list[str], per_model: int, seed: int) -> list[DeploymentEvent]:
    """`per_model` events for every model, sequences 1..per_model, models interleaved at random."""
    rng = random.Random(seed)
    order = [m for m in ids for _ in range(per_model)]
    rng.shuffle(order)
    next_sequence = dict.fromkeys(ids, 0)
    events = []
    for model_id in order:
        next_sequence[model_id] += 1
        sequence = next_sequence[model_id]
        event_type = rng.choice(list(EventType))
        extra = {}
        if event_type is EventType.READY:
            extra = {"endpoint": f"http://serve:8000/{NAMESPACE}/{model_id}", "base_image": "serve-onnx:1"}
        events.append(
            DeploymentEvent(
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                event_type=event_type,
                namespace_id=NAMESPACE,
                model_id=model_id,
                sequence=sequence,
                occurred_at=BASE_TIME + timedelta(seconds=sequence),
                message=f"step {sequence}",
                **extra,
            )
        )
    return events


async def produce(producer: AIOKafkaProducer, topic: str, events: list[DeploymentEvent]) -> None:
    pending = [await producer.send(topic, value=encode(e), key=e.key.kafka_key()) for e in events]
    await asyncio.gather(*pending)


def _update(model_id: str, sequence: int, now: datetime, history_limit: int) -> tuple[dict, dict]:
    """The same guarded write the worker makes for one model (compare-and-set on the sequence)."""
    return (
        {"namespace_id": NAMESPACE, "model_id": model_id, "last_event_sequence": sequence - 1 or None},
        {
            "$set": {
                "deployed": False,
                "deployment_info": None,
                "deployment_status": "pending",
                "deployment_message": f"step {sequence}",
                "last_event_sequence": sequence,
                "observed_at": now,
                "updated_at": now,
            },
            "$push": {
                "deployment_history": {
                    "$each": [
                        {
                            "event_id": str(uuid.uuid4()),
                            "event_type": "deployment.started",
                            "sequence": sequence,
                            "occurred_at": now,
                            "applied_at": now,
                            "endpoint": None,
                            "ray_deployment_name": None,
                            "message": f"step {sequence}",
                        }
                    ],
                    "$slice": -history_limit,
                }
            },
        },
    )


async def raw_limits(stack: BenchStack, ids: list[str], duration_s: float) -> dict[str, Figure]:
    """Conditional single-document updates per second on the same server, in a collection of their own."""
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, journal=True)
    collection = client[stack.settings.mongodb_database].limit_models
    history_limit = stack.settings.history_limit
    batch = stack.settings.worker_batch_max_records
    try:
        await collection.drop()
        await collection.insert_many([model_document(m) for m in ids])
        # The same indexes the registry's collection has for these writes.
        await collection.create_index([("namespace_id", 1), ("model_id", 1)], unique=True)
        await collection.create_index([("namespace_id", 1), ("model_id", 1), ("last_event_sequence", 1)])
        sequence = dict.fromkeys(ids, 0)

        def rate(done: int, unmatched: int, started: float) -> Figure:
            # Sequences are tracked exactly, so a guard that does not match is a write not made.
            failure = f"{unmatched:,} of {done:,} guarded updates matched nothing" if unmatched else None
            return figure(done / (time.perf_counter() - started), failure)

        async def sequential() -> Figure:
            done = unmatched = 0
            started = time.perf_counter()
            while time.perf_counter() - started < duration_s:
                model_id = ids[done % len(ids)]
                sequence[model_id] += 1
                filter_, update = _update(model_id, sequence[model_id], datetime.now(UTC), history_limit)
                result = await collection.update_one(filter_, update)
                unmatched += result.matched_count != 1
                done += 1
            return rate(done, unmatched, started)

        async def bulk() -> Figure:
            # The worker's shape: one unordered bulk of `batch` guarded updates in flight at a time.
            done = unmatched = cursor = 0
            started = time.perf_counter()
            while time.perf_counter() - started < duration_s:
                chosen = [ids[(cursor + k) % len(ids)] for k in range(min(batch, len(ids)))]
                cursor += len(chosen)
                now = datetime.now(UTC)
                operations = []
                for model_id in chosen:
                    sequence[model_id] += 1
                    operations.append(UpdateOne(*_update(model_id, sequence[model_id], now, history_limit)))
                result = await collection.bulk_write(operations, ordered=False)
                unmatched += len(operations) - result.matched_count
                done += len(operations)
            return rate(done, unmatched, started)

        return {"sequential update_one": await sequential(), f"bulk_write of {batch}": await bulk()}
    finally:
        await collection.drop()
        await client.close()


def of_models(ids: list[str]) -> dict:
    return {"namespace_id": NAMESPACE, "model_id": {"$in": ids}}


async def applied_sequences(collection: AsyncCollection, ids: list[str]) -> int:
    """The models' last applied sequences added up: grows with every batch the worker writes."""
    cursor = await collection.aggregate(
        [{"$match": of_models(ids)}, {"$group": {"_id": None, "total": {"$sum": "$last_event_sequence"}}}]
    )
    totals = await cursor.to_list()
    return int(totals[0]["total"]) if totals else 0


async def wait_for_last_sequences(collection: AsyncCollection, ids: list[str], per_model: int) -> int:
    """Models of `ids` showing their last sequence, once all do or the worker applied nothing more for
    STALL_S (a fixed deadline would fail a slow database rather than a lost event)."""
    # Events are interleaved, so models reach their last sequence only near the end: progress is
    # judged on every applied sequence, checked now and then to keep the polling light.
    progress, progress_at, checked_at = -1, time.perf_counter(), 0.0
    while True:
        shown = await collection.count_documents({**of_models(ids), "last_event_sequence": per_model})
        if shown >= len(ids):
            return shown
        now = time.perf_counter()
        if now - checked_at >= 5:
            checked_at = now
            applied = await applied_sequences(collection, ids)
            if applied > progress:
                progress, progress_at = applied, now
            elif now - progress_at > STALL_S:
                return shown
        # Each count scans the models on SecantusDB: polled once a second, so watching takes little of
        # the database the worker is measured on (the figure's resolution: a second of a long run).
        await asyncio.sleep(1.0)


async def events_in_histories(collection: AsyncCollection, per_model: int, history_limit: int) -> int:
    """Events recorded in the models' histories (each model keeps its last `history_limit`)."""
    kept = 0
    async for doc in collection.find({"namespace_id": NAMESPACE}, {"deployment_history.sequence": 1}):
        sequences = {entry["sequence"] for entry in doc.get("deployment_history") or []}
        kept += len(sequences & set(range(max(1, per_model - history_limit + 1), per_model + 1)))
    return kept


@dataclass
class WorkerResults:
    table: Table
    peak_rss: int
    load_failure: str | None  # why the event load failed (the peak RSS then says nothing), else None


async def run(stack: BenchStack, ids: list[str], per_model: int, limit_seconds: float) -> WorkerResults:
    settings = stack.settings
    events = event_stream(ids, per_model, seed=5)
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url)
    collection = client[settings.mongodb_database].custom_models
    producer = kafka.make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        await collection.update_many(
            {"namespace_id": NAMESPACE},
            {"$unset": dict.fromkeys(OBSERVED_FIELDS, "")},
        )
        async with PeakRss(stack.worker.process.pid) as worker_peak:
            started = time.perf_counter()
            await produce(producer, settings.events_topic, events)
            produced_s = time.perf_counter() - started
            shown = await wait_for_last_sequences(collection, ids, per_model)
            elapsed = time.perf_counter() - started
        # Reaching the last sequence does not prove the events before it were applied (the guard lets
        # gaps through): a dead-lettered or skipped event is missing from its model's history.
        history_per_model = min(per_model, settings.history_limit)
        recorded = await events_in_histories(collection, per_model, settings.history_limit)
    finally:
        await producer.stop()
        await client.close()
    limits = await raw_limits(stack, ids, limit_seconds)

    failure = joined_failures(
        unseen_failure(len(ids), shown, "models' last sequences"),
        unseen_failure(len(ids) * history_per_model, recorded, "events in the models' histories"),
    )
    worker_rate = figure(len(events) / elapsed, failure)
    table = Table(
        f"Worker: {len(events):,} events over {len(ids):,} models, produce → DB shows every last sequence",
        ["measure", "per second", "worker/limit"],
    )
    table.add("worker: applied events", worker_rate.text(",.0f"), "")
    if failure is not None:
        table.fail("worker: applied events", failure)
    for name, rate in limits.items():
        table.add(f"limit: {name} (guarded, journaled)", rate.text(",.0f"), ratio(worker_rate, rate))
        if rate.failure is not None:
            table.fail(f"limit: {name}", rate.failure)
    table.notes.append(
        f"{elapsed:.1f} s end to end; producing took {produced_s:.1f} s of it (the worker consumed meanwhile)"
    )
    table.notes.append(
        "the worker writes each model once per batch whatever the number of its events in that batch, so "
        "events/s may exceed the single-document write rate"
    )
    return WorkerResults(table, worker_peak.peak, failure)
