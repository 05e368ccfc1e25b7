"""`modelreg models watch` and `modelreg models deploy … --wait`: a model's transitions as they commit.

Reads the change feed (MongoDB change streams) directly, like the other operator commands read MongoDB. The
stream is opened before anything is published, so no transition is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

from modelreg.services.api.watch.service import change_body
from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.adapters.mongo.change_stream import (
    ChangeStreamCursor,
    MongoChangeFeed,
    enable_pre_images,
)
from modelreg.shared.change_rules import ChangeKind, ModelChangeSummary, matches
from modelreg.shared.changes import RegistryChange
from modelreg.shared.contracts import ModelKey
from modelreg.shared.settings import Settings

# `--wait` exit codes: deployed, failed (or deleted), not found, no outcome within the timeout; and an
# interrupted watch's (SIGINT or SIGTERM), the shell's 128 + SIGINT.
EXIT_DEPLOYED, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
TERMINAL = {"deployed": EXIT_DEPLOYED, "failed": EXIT_FAILED}
IDLE_S = 0.05
# Longest wait for the database while closing after a stop: an interrupted watch exits even when it hangs.
CLOSE_WAIT_S = 5.0


def transition_line(summary: ModelChangeSummary, status: str | None) -> str:
    parts = [f"{summary.namespace_id}/{summary.model_id}", str(summary.kind)]
    if summary.event_type:
        parts.append(summary.event_type)
    parts.append(f"status={status or 'gone'}")
    if summary.sequence is not None:
        parts.append(f"sequence={summary.sequence}")
    if summary.endpoint:
        parts.append(f"endpoint={summary.endpoint}")
    if summary.message:
        parts.append(f"message={summary.message!r}")
    return "  ".join(parts)


async def follow_model(
    settings: Settings,
    key: ModelKey,
    out: TextIO,
    *,
    publish: Callable[[], Awaitable[object]] | None = None,
    wait: bool = False,
    timeout_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Print the model's state, then each transition; with `wait`, return once deployed or failed; once
    `stop` is set, EXIT_INTERRUPTED."""
    stop = stop or asyncio.Event()
    client = await mongo.connect(settings)
    try:
        await enable_pre_images(client, settings.mongodb_database)  # deletes still name their model
        feed = MongoChangeFeed(client, settings.mongodb_database)
        async with feed.open() as cursor:
            await cursor.next()  # the stream is open: everything after this point is seen
            details = await ModelStore(settings.history_limit).get_details(key)
            if details is None:
                print(f"no model {key.namespace_id}/{key.model_id}", file=out, flush=True)
                return EXIT_NOT_FOUND
            from modelreg.services.api.models.views import current_status

            print(
                f"{key.namespace_id}/{key.model_id}  status={current_status(details)}", file=out, flush=True
            )
            if publish is not None:
                await publish()
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while deadline is None or time.monotonic() < deadline:
                change = await next_unless_stopped(cursor, stop)
                if stop.is_set():
                    return EXIT_INTERRUPTED
                if change is None:
                    await asyncio.sleep(IDLE_S)
                    continue
                described = change_body(change)
                if described is None or not matches(described[0], key.namespace_id, key.model_id):
                    continue
                summary, event = described
                status = None if event.model is None else event.model.deployment_status
                print(transition_line(summary, status), file=out, flush=True)
                if wait and summary.kind == ChangeKind.MODEL_DELETED:
                    return EXIT_FAILED
                if wait and summary.kind == ChangeKind.DEPLOYMENT_CHANGED and status in TERMINAL:
                    return TERMINAL[status]
            print(f"no outcome within {timeout_s:g}s", file=out, flush=True)
            return EXIT_TIMEOUT
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.close(), CLOSE_WAIT_S)


async def next_unless_stopped(cursor: ChangeStreamCursor, stop: asyncio.Event) -> RegistryChange | None:
    """The stream's next change (None when idle), or None as soon as `stop` is set, whatever the database
    does meanwhile: the read is then cancelled, and given CLOSE_WAIT_S to wind down."""
    reading = asyncio.ensure_future(cursor.next())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if reading.done():
        return reading.result()
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(reading, CLOSE_WAIT_S)
    return None
