"""Push latency: event published → SSE change received by watchers, and → webhook received.

`watchers` clients each hold `GET /v1/namespaces/{ns}/models/{id}/watch` on their own model; events are
published at `rate` per second round-robin over those models (each carrying a probe token as its message).
The webhook dispatcher (`modelreg webhooks`, started here) delivers `deployment.changed` to a local
receiver in this process. Both latencies run from the send to Kafka to the arrival of the change.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from bench.figures import NO_FIGURE, Figure, error_summary, figure, joined_failures, unseen_failure
from bench.load import percentile
from bench.read_api import NAMESPACE
from bench.stack import BenchStack, bearer, worker_batches
from bench.tables import Table
from modelreg.shared.adapters import kafka
from modelreg.shared.contracts import DeploymentEvent, EventType, encode, now_microseconds

GIVE_UP_S = 30
DISPATCHER_START_S = 60


class Arrivals:
    """Arrival times of the probe events, per channel.

    The worker writes a model once per batch, so one committed change can carry several of a model's events
    (the last one's message and sequence): a change with sequence S is the arrival of every event of its
    model with a sequence up to S not seen before on that channel.
    """

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        # Per model, the probes sent and not yet seen, by channel: (sequence, token), in sending order.
        self.pending: dict[str, dict[str, list[tuple[int, str]]]] = {"sse": {}, "webhook": {}}
        self.sse: dict[str, float] = {}
        self.webhook: dict[str, float] = {}
        # Commit → SSE: the database's commit time (change.committed_at, wall clock) to the arrival.
        self.from_commit: list[float] = []
        self.errors: Counter[str] = Counter()
        self.resets = 0

    def send(self, model_id: str, sequence: int, token: str) -> None:
        self.sent[token] = time.perf_counter()
        for pending in self.pending.values():
            pending.setdefault(model_id, []).append((sequence, token))

    def arrived(self, channel: str, change: dict) -> int:
        """Record the events `change` carries on `channel`; how many it carried."""
        model_id, sequence = change.get("model_id"), change.get("sequence")
        if not isinstance(model_id, str) or not isinstance(sequence, int):
            return 0
        pending = self.pending[channel].get(model_id, [])
        covered = 0
        while covered < len(pending) and pending[covered][0] <= sequence:
            covered += 1
        now, seen = time.perf_counter(), self.sse if channel == "sse" else self.webhook
        for _, token in pending[:covered]:
            seen[token] = now
        del pending[:covered]
        return covered

    def latencies(self, channel: dict[str, float]) -> list[float]:
        return sorted(channel[t] - self.sent[t] for t in channel if t in self.sent)


async def watch_model(
    http: aiohttp.ClientSession, model_id: str, arrivals: Arrivals, opened: asyncio.Event, stop: asyncio.Event
) -> None:
    url = f"/v1/namespaces/{NAMESPACE}/models/{model_id}/watch"
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            if response.status != 200:
                arrivals.errors[f"watch HTTP {response.status}"] += 1
                return
            event = None
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "reset":
                        arrivals.resets += 1
                elif line.startswith("data: ") and event == "snapshot":
                    opened.set()
                elif line.startswith("data: ") and event == "change":
                    change = json.loads(line[6:])["change"]
                    if arrivals.arrived("sse", change):
                        committed = datetime.fromisoformat(change["committed_at"]).timestamp()
                        arrivals.from_commit.append(max(0.0, time.time() - committed))
                if stop.is_set():
                    return
    except (TimeoutError, aiohttp.ClientError) as exc:
        if not stop.is_set():
            arrivals.errors[f"watch {type(exc).__name__}"] += 1


async def receiver(arrivals: Arrivals) -> tuple[web.AppRunner, int]:
    async def hook(request: web.Request) -> web.Response:
        payload = await request.json()
        arrivals.arrived("webhook", payload["data"]["change"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def start_dispatcher(stack: BenchStack) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **stack.settings.as_env(),
        "MODELREG_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "MODELREG_WEBHOOK_POLL_INTERVAL_S": "0.1",
        "MODELREG_LOG_LEVEL": "INFO",
    }
    log = (stack.workdir / "webhooks.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "modelreg.services.cli", "webhooks"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


async def dispatcher_following(stack: BenchStack, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DISPATCHER_START_S
    log = stack.workdir / "webhooks.log"
    while "following the change feed" not in (log.read_text(errors="replace") if log.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the webhook dispatcher did not start; see {log}")
        await asyncio.sleep(0.2)


async def run(
    stack: BenchStack, api_key: str, ids: list[str], rate: float, duration_s: float, watchers: int
) -> tuple[Table, Figure]:
    """The table, and the p99 from the send to the change received over SSE (failed when any was missed)."""
    settings = stack.settings
    arrivals = Arrivals()
    models = ids[:watchers]
    runner, port = await receiver(arrivals)
    dispatcher = start_dispatcher(stack)
    producer = kafka.make_producer(settings, linger_ms=0)
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=watchers + 4)
    try:
        async with aiohttp.ClientSession(stack.api_url, headers=bearer(api_key), connector=connector) as http:
            async with http.post(
                f"/v1/namespaces/{NAMESPACE}/webhooks",
                json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["deployment.changed"]},
            ) as response:
                if response.status != 201:
                    raise RuntimeError(
                        f"creating the webhook answered {response.status}: {await response.text()}"
                    )
            await dispatcher_following(stack, dispatcher)
            opened = [asyncio.Event() for _ in models]
            streams = [
                asyncio.create_task(watch_model(http, m, arrivals, o, stop))
                for m, o in zip(models, opened, strict=True)
            ]
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 60)
            await producer.start()
            batches_before = await worker_batches(stack)
            count = int(rate * duration_s)
            first_sequence = now_microseconds()
            started = time.perf_counter()
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                token = f"push probe {i}"
                evt = DeploymentEvent(
                    event_id=uuid.uuid4(),
                    event_type=EventType.STARTED,
                    namespace_id=NAMESPACE,
                    model_id=models[i % len(models)],
                    sequence=first_sequence + i,
                    occurred_at=datetime.now(UTC),
                    message=token,
                )
                arrivals.send(evt.model_id, evt.sequence, token)
                await producer.send(settings.events_topic, value=encode(evt), key=evt.key.kafka_key())
            achieved_rate = count / (time.perf_counter() - started)
            deadline = time.perf_counter() + GIVE_UP_S
            while time.perf_counter() < deadline and (
                len(arrivals.sse) < count or len(arrivals.webhook) < count
            ):
                await asyncio.sleep(0.1)
            batches = (await worker_batches(stack)).since(batches_before)
            stop.set()
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
    finally:
        await producer.stop()
        dispatcher.terminate()
        try:
            dispatcher.wait(30)
        except subprocess.TimeoutExpired:
            dispatcher.kill()
        await runner.cleanup()

    table = Table(
        f"Event published → pushed: {rate:g} events/s for {duration_s:g} s, {watchers} SSE watchers",
        [
            "channel",
            "events",
            "achieved events/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            f"not seen in {GIVE_UP_S} s",
        ],
    )
    sse_p99 = figure(0.0, "not measured")
    for channel, seen in (("SSE change received", arrivals.sse), ("webhook received", arrivals.webhook)):
        latencies = arrivals.latencies(seen)
        failure = joined_failures(
            unseen_failure(count, len(latencies), "events"),
            error_summary(arrivals.errors) if channel.startswith("SSE") else None,
        )
        p50 = figure(percentile(latencies, 0.5) * 1000, failure)
        if channel.startswith("SSE"):
            sse_p99 = figure(percentile(latencies, 0.99) * 1000 if latencies else 0.0, failure)
        if failure is not None:
            table.add(
                channel,
                count,
                f"{achieved_rate:.1f}",
                p50.text(".1f"),
                NO_FIGURE,
                NO_FIGURE,
                count - len(latencies),
            )
            table.fail(channel, failure)
        else:
            table.add(
                channel,
                count,
                f"{achieved_rate:.1f}",
                p50.text(".1f"),
                f"{percentile(latencies, 0.99) * 1000:.1f}",
                f"{latencies[-1] * 1000:.1f}",
                0,
            )
    from_commit = sorted(arrivals.from_commit)
    if from_commit:
        table.add(
            "SSE, from the commit",
            len(from_commit),
            f"{achieved_rate:.1f}",
            f"{percentile(from_commit, 0.5) * 1000:.1f}",
            f"{percentile(from_commit, 0.99) * 1000:.1f}",
            f"{from_commit[-1] * 1000:.1f}",
            "",  # counted in changes, not events: a change may carry several
        )
    table.notes.append(
        "'SSE, from the commit' starts at the change's committed_at (MongoDB's wallTime, millisecond "
        "resolution): the change feed and the API's fan-out alone, without Kafka and the worker; its "
        "count is of changes"
    )
    table.notes.append(
        "from the send to Kafka to the arrival: Kafka → worker → MongoDB commit → change stream → "
        "the API's hub → SSE (each watcher on its own model), or → the dispatcher's delivery log → "
        f"signed POST to a local receiver; watchers reset for falling behind: {arrivals.resets}; "
        "an event arrives with the first change of its model at or past its sequence (one write per model "
        "per worker batch); goal p99 ≤ 100 ms for SSE"
    )
    table.notes.append(batches.summary())
    return table, sse_p99
