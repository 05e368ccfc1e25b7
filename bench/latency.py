"""Event → visible: time from producing an event to the first GET response that shows it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import aiohttp

from bench.figures import NO_FIGURE, Figure, error_summary, figure, joined_failures, unseen_failure
from bench.load import percentile
from bench.read_api import NAMESPACE, status_error
from bench.stack import BenchStack, bearer
from bench.tables import Table
from shared.adapters import kafka
from shared.contracts import DeploymentEvent, EventType, encode

POLL_INTERVAL_S = 0.01
# At most this many GETs in flight for all probes together, so watching does not become the load.
MAX_CONCURRENT_POLLS = 4
GIVE_UP_S = 30


async def run(
    stack: BenchStack, api_key: str, ids: list[str], rate: float, duration_s: float, first_sequence: int
) -> tuple[Table, Figure]:
    """The table, and the p99 in ms (failed when any event went unseen) for the goals."""
    settings = stack.settings
    producer = kafka.make_producer(settings, linger_ms=0)
    await producer.start()
    latencies: list[float] = []
    polls = 0
    poll_errors: Counter[str] = Counter()
    poll_slots = asyncio.Semaphore(MAX_CONCURRENT_POLLS)
    connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT_POLLS)
    async with aiohttp.ClientSession(stack.api_url, headers=bearer(api_key), connector=connector) as http:

        async def watch(model_id: str, token: str, sent_at: float) -> None:
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
                if body is not None and body["model"]["deployment_message"] == token:
                    latencies.append(time.perf_counter() - sent_at)
                    return
                await asyncio.sleep(POLL_INTERVAL_S)

        watchers = []
        count = int(rate * duration_s)
        started = time.perf_counter()
        try:
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                model_id = ids[i % len(ids)]
                token = f"latency probe {i}"
                evt = DeploymentEvent(
                    event_id=uuid.uuid4(),
                    event_type=EventType.STARTED,
                    namespace_id=NAMESPACE,
                    model_id=model_id,
                    sequence=first_sequence + i,
                    occurred_at=datetime.now(UTC),
                    message=token,
                )
                sent_at = time.perf_counter()
                await producer.send(settings.events_topic, value=encode(evt), key=evt.key.kafka_key())
                watchers.append(asyncio.create_task(watch(model_id, token, sent_at)))
            achieved_rate = count / (time.perf_counter() - started)
            await asyncio.gather(*watchers)
            poll_rate = polls / (time.perf_counter() - started)
        finally:
            await producer.stop()

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
        "If-None-Match, so an unchanged model answers 304 without a body)"
    )
    p99 = figure(percentile(latencies, 0.99) * 1000, failure)
    return table, p99
