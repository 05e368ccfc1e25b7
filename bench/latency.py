"""Event → visible: time from producing an event to the first GET response that shows it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import aiohttp
from pymongo import AsyncMongoClient

from bench.figures import NO_FIGURE, Figure, error_summary, figure, joined_failures, unseen_failure
from bench.load import percentile
from bench.read_api import NAMESPACE, status_error
from bench.stack import BenchStack, bearer, worker_batches
from bench.tables import Table
from modelreg.shared.adapters import kafka
from modelreg.shared.contracts import DeploymentEvent, EventType, encode

POLL_INTERVAL_S = 0.01
# At most this many GETs in flight for all probes together, so watching does not become the load.
MAX_CONCURRENT_POLLS = 4
GIVE_UP_S = 30
PROBE_PREFIX = "latency probe "


def shows_probe(message: str | None, probe: int) -> bool:
    """Whether a model's message shows probe `probe` or a later one of the same model.

    The worker writes a model once per batch, so a later event of the model can supersede an earlier one
    in the same write: the earlier event is applied then, though its own message never shows.
    """
    if message is None or not message.startswith(PROBE_PREFIX):
        return False
    try:
        return int(message[len(PROBE_PREFIX) :]) >= probe
    except ValueError:
        return False


WARM_UP_MESSAGE = "latency warm-up"
WARM_UP_S = 120


def warm_up_event(model_id: str, sequence: int) -> DeploymentEvent:
    return DeploymentEvent(
        event_id=uuid.uuid4(),
        event_type=EventType.STARTED,
        namespace_id=NAMESPACE,
        model_id=model_id,
        sequence=sequence,
        occurred_at=datetime.now(UTC),
        message=WARM_UP_MESSAGE,
    )


async def warmed_up(http: aiohttp.ClientSession, model_id: str) -> None:
    deadline = time.perf_counter() + WARM_UP_S
    while time.perf_counter() < deadline:
        async with http.get(f"/v1/namespaces/{NAMESPACE}/models/{model_id}") as response:
            if response.status == 200 and (await response.json())["model"]["deployment_message"] == (
                WARM_UP_MESSAGE
            ):
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the worker applied no event within {WARM_UP_S} s")


async def run(
    stack: BenchStack, api_key: str, ids: list[str], rate: float, duration_s: float, first_sequence: int
) -> tuple[Table, Figure]:
    """The table, and the p99 in ms (failed when any event went unseen) for the goals."""
    settings = stack.settings
    producer = kafka.make_producer(settings, linger_ms=0)
    await producer.start()
    batches_before = await worker_batches(stack)
    latencies: list[float] = []
    polls = 0
    poll_errors: Counter[str] = Counter()
    poll_slots = asyncio.Semaphore(MAX_CONCURRENT_POLLS)
    connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT_POLLS)
    async with aiohttp.ClientSession(stack.api_url, headers=bearer(api_key), connector=connector) as http:

        async def watch(model_id: str, probe: int, sent_at: float) -> None:
            nonlocal polls
            url = f"/v1/namespaces/{NAMESPACE}/models/{model_id}"
            # The copy last seen: while it holds, the API answers 304 without a body (cheaper to poll).
            etag: dict[str, str] = {}
            while time.perf_counter() - sent_at < GIVE_UP_S:
                try:
                    async with poll_slots, http.get(url, headers=etag) as response:
                        polls += 1
                        unchanged = response.status == 304
                        error = None if unchanged else status_error(response.status)
                        body = await response.json() if error is None and not unchanged else None
                        if "ETag" in response.headers:
                            etag = {"If-None-Match": response.headers["ETag"]}
                except aiohttp.ClientError as exc:
                    error = type(exc).__name__
                if error is not None:
                    # The event's figure is lost already; polling on would only add load.
                    poll_errors[error] += 1
                    return
                if body is not None and shows_probe(body["model"]["deployment_message"], probe):
                    latencies.append(time.perf_counter() - sent_at)
                    return
                await asyncio.sleep(POLL_INTERVAL_S)

        # The worker has joined its group and applies events before the clock starts.
        warm_up = warm_up_event(ids[0], first_sequence)
        await producer.send_and_wait(
            settings.events_topic, value=encode(warm_up), key=warm_up.key.kafka_key()
        )
        await warmed_up(http, ids[0])
        watchers = []
        count = int(rate * duration_s)
        started = time.perf_counter()
        try:
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                model_id = ids[i % len(ids)]
                token = f"{PROBE_PREFIX}{i}"
                evt = DeploymentEvent(
                    event_id=uuid.uuid4(),
                    event_type=EventType.STARTED,
                    namespace_id=NAMESPACE,
                    model_id=model_id,
                    sequence=first_sequence + 1 + i,
                    occurred_at=datetime.now(UTC),
                    message=token,
                )
                sent_at = time.perf_counter()
                await producer.send(settings.events_topic, value=encode(evt), key=evt.key.kafka_key())
                watchers.append(asyncio.create_task(watch(model_id, i, sent_at)))
            achieved_rate = count / (time.perf_counter() - started)
            await asyncio.gather(*watchers)
            poll_rate = polls / (time.perf_counter() - started)
        finally:
            await producer.stop()
    batches = (await worker_batches(stack)).since(batches_before)

    latencies.sort()
    table = Table(
        f"Event → visible in GET: {rate:g} events/s for {duration_s:g} s",
        ["events", "achieved events/s", "p50 ms", "p99 ms", "max ms", f"not seen in {GIVE_UP_S} s"],
    )
    # A percentile over the events that were seen says nothing about the ones that were not.
    failure = joined_failures(
        unseen_failure(count, len(latencies), "events"),
        error_summary(poll_errors),
        None if count else "no event sent",
    )
    p50 = figure(percentile(latencies, 0.5) * 1000, failure)
    if failure is not None:
        unseen = count - len(latencies)
        table.add(count, f"{achieved_rate:.1f}", p50.text(".1f"), NO_FIGURE, NO_FIGURE, unseen)
        table.fail("event → visible", failure)
    else:
        table.add(
            count,
            f"{achieved_rate:.1f}",
            p50.text(".1f"),
            f"{percentile(latencies, 0.99) * 1000:.1f}",
            f"{latencies[-1] * 1000:.1f}",
            0,
        )
    table.notes.append(
        f"each event is watched by a poller (GET every {POLL_INTERVAL_S * 1000:g} ms, at most "
        f"{MAX_CONCURRENT_POLLS} GETs in flight overall: {poll_rate:,.0f} GET/s on average), so figures "
        "include up to one poll round and the watching's own load on the API and the database (polls send "
        "If-None-Match, so an unchanged model answers 304 without a body); an event counts as visible once "
        "its model shows it or a later event of the same model (one write per model per worker batch)"
    )
    table.notes.append(batches.summary())
    p99 = figure(percentile(latencies, 0.99) * 1000, failure)
    return table, p99


STALENESS_PROBES = 200
STALENESS_RATE = 20.0


async def staleness(stack: BenchStack, api_key: str, ids: list[str]) -> tuple[Table, Figure]:
    """Commit → visible in GET: a model changed straight in MongoDB (as another process would), then polled
    through the API until it shows; what the details cache's staleness bound costs (TTL or change feed)."""
    settings = stack.settings
    mongo: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url)
    collection = mongo[settings.mongodb_database].custom_models
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    async with aiohttp.ClientSession(stack.api_url, headers=bearer(api_key)) as http:

        async def probe(i: int) -> None:
            model_id = ids[i % len(ids)]
            url = f"/v1/namespaces/{NAMESPACE}/models/{model_id}"
            async with http.get(url) as response:  # the cache holds the model before it changes
                await response.read()
            token = f"staleness probe {i}"
            await collection.update_one(
                {"namespace_id": NAMESPACE, "model_id": model_id}, {"$set": {"deployment_message": token}}
            )
            committed = time.perf_counter()
            while time.perf_counter() - committed < GIVE_UP_S:
                async with http.get(url) as response:
                    error = status_error(response.status)
                    body = await response.json() if error is None else None
                if error is not None:
                    errors[error] += 1
                    return
                if body is not None and body["model"]["deployment_message"] == token:
                    latencies.append(time.perf_counter() - committed)
                    return
                await asyncio.sleep(0.002)

        started = time.perf_counter()
        probes = []
        for i in range(STALENESS_PROBES):
            await asyncio.sleep(max(0.0, started + i / STALENESS_RATE - time.perf_counter()))
            probes.append(asyncio.create_task(probe(i)))
        await asyncio.gather(*probes)
    await mongo.close()
    latencies.sort()
    failure = joined_failures(
        unseen_failure(STALENESS_PROBES, len(latencies), "changes"), error_summary(errors)
    )
    p50, p99 = (figure(percentile(latencies, q) * 1000, failure) for q in (0.5, 0.99))
    table = Table(
        f"Staleness: a write by another process → visible in GET, {STALENESS_RATE:g} changes/s",
        ["changes", "p50 ms", "p99 ms"],
    )
    table.add(STALENESS_PROBES, p50.text(".1f"), p99.text(".1f"))
    if failure is not None:
        table.fail("staleness", failure)
    table.notes.append(
        "each model is read once before it changes (so the cache holds it), then polled every 2 ms; without "
        "the change feed the bound is MODELREG_API_DETAILS_CACHE_TTL_S"
    )
    return table, p99
