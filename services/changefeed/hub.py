"""ChangeHub: the process's one change stream, fanned out to subscribers with bounded buffers.

A subscriber that falls behind by more than its buffer is cut off (`SubscriberLagged`) instead of slowing
the others; it starts again from a fresh read. Subscribing `after` a token first replays what was committed
since then from a short-lived stream of its own, then continues on the shared one without gap or duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncIterator

import structlog

from modelreg.services.changefeed.ports import ChangeFeed
from modelreg.shared.changes import RegistryChange

# The shortest pause between two empty reads of the stream.
IDLE_POLL_S = 0.01

log = structlog.get_logger("modelreg.changefeed")


class SubscriberLagged(Exception):
    """The subscriber missed changes (its buffer overflowed, or its token cannot be resumed)."""


class Subscription:
    """One subscriber's view of the feed; `next(timeout)` answers None when nothing arrived in time."""

    def __init__(self, hub: ChangeHub, after: str | None, buffer_size: int) -> None:
        self._hub = hub
        self._after = after
        self._buffer_size = buffer_size
        self._queue: asyncio.Queue[RegistryChange] = asyncio.Queue(maxsize=buffer_size)
        self._replay: deque[RegistryChange] | None = None
        self._replayed: set[str] = set()
        self.lagged = False
        # Where the shared stream was when this subscription joined it: a token to resume after.
        self.position = hub.position

    def offer(self, change: RegistryChange) -> None:
        if self.lagged:
            return
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.lagged = True

    async def _load_replay(self) -> None:
        replay: deque[RegistryChange] = deque()
        if self._after is not None:
            try:
                async with self._hub.feed.open(self._after) as cursor:
                    while (change := await cursor.next()) is not None:
                        replay.append(change)
                        if len(replay) > self._buffer_size:
                            raise SubscriberLagged("too many changes to replay")
            except SubscriberLagged:
                raise
            except Exception as exc:
                raise SubscriberLagged(f"cannot resume after the token: {exc}") from exc
        self._replayed = {change.token for change in replay}
        self._replay = replay

    async def next(self, timeout_s: float | None = None) -> RegistryChange | None:
        if self._replay is None:
            await self._load_replay()
        assert self._replay is not None
        if self._replay:
            return self._replay.popleft()
        while True:
            if self.lagged:
                raise SubscriberLagged("the subscriber fell behind its buffer")
            try:
                change = await asyncio.wait_for(self._queue.get(), timeout_s)
            except TimeoutError:
                return None
            if change.token in self._replayed:
                continue
            self._replayed.clear()
            return change

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ChangeHub:
    """Implements shared.changes.ChangeSource for the process; `run()` reads the one shared stream."""

    def __init__(
        self,
        feed: ChangeFeed,
        buffer_size: int = 256,
        max_backoff_s: float = 5.0,
        start_after: str | None = None,
    ) -> None:
        self.feed = feed
        self.buffer_size = buffer_size
        self.max_backoff_s = max_backoff_s
        self.position: str | None = start_after
        self.ready = asyncio.Event()
        self._subscribers: set[Subscription] = set()

    def open_subscription(self, after: str | None = None, buffer_size: int | None = None) -> Subscription:
        subscription = Subscription(self, after, buffer_size or self.buffer_size)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def subscribe(self, after: str | None = None) -> AsyncIterator[RegistryChange]:
        """shared.changes.ChangeSource: changes after `after`, in order; raises SubscriberLagged if the
        consumer falls more than its buffer behind."""
        with self.open_subscription(after) as subscription:
            while True:
                change = await subscription.next()
                if change is not None:
                    yield change

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with self.feed.open(self.position) as cursor:
                    while True:
                        started = time.monotonic()
                        change = await cursor.next()
                        failures = 0
                        if change is None:
                            if time.monotonic() - started < IDLE_POLL_S:
                                await asyncio.sleep(IDLE_POLL_S)  # servers that answer an empty read at once
                            if self.position is None or cursor.position is not None:
                                self.position = cursor.position or self.position
                            self.ready.set()
                            continue
                        self.position = change.token
                        for subscription in list(self._subscribers):
                            subscription.offer(change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures > 3 and self.position is not None:
                    # The stored position cannot be resumed: start from now; every subscriber starts over.
                    log.warning("change feed restarts from now", error=repr(exc)[:300])
                    self.position = None
                    for subscription in list(self._subscribers):
                        subscription.lagged = True
                else:
                    log.warning("change feed interrupted", error=repr(exc)[:300])
                delay = min(self.max_backoff_s, 0.2 * 2 ** min(failures, 6)) * (0.5 + random.random() / 2)
                await asyncio.sleep(delay)


@contextlib.asynccontextmanager
async def running(hub: ChangeHub, ready_timeout_s: float = 30) -> AsyncIterator[ChangeHub]:
    """Run the hub in the background while the block runs (waits until its stream is open)."""
    task = asyncio.create_task(hub.run())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.ready.wait(), ready_timeout_s)
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
