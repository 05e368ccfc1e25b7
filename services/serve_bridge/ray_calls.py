"""The bridge's Ray call executor: the adapter's blocking calls, one at a time on one thread, time-limited."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

from modelreg.services.serve_bridge.ports import ServeAdapter

T = TypeVar("T")
# A call for the Ray thread: the loop awaiting it, the future to settle there, and the call itself.
_Call: TypeAlias = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]]


class RayHung(RuntimeError):
    """A call to Ray did not return in time; the process should be restarted."""


class RayCalls:
    """Runs the adapter's blocking calls one at a time on a dedicated thread, with a time limit.

    The thread is a daemon: a call that never returns must not keep the process from exiting.
    """

    def __init__(self, adapter: ServeAdapter, timeout_s: float) -> None:
        self.adapter = adapter
        self.timeout_s = timeout_s
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="ray-calls", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            loop, future, function = item
            try:
                outcome, failed = function(), False
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome, failed = exc, True
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, outcome, failed)

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, functools.partial(function, *args, **kwargs)))
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise RayHung(f"{function.__name__} did not return within {self.timeout_s}s") from None

    def shutdown(self) -> None:
        self._calls.put(None)


def _settle(future: asyncio.Future[Any], outcome: Any, failed: bool) -> None:
    if future.done():  # the caller gave up waiting
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
