"""Retrying an operation against MongoDB or Kafka while they are unavailable."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("modelreg.retry")


class Stopping(Exception):
    """Shutdown was requested while the operation was still failing."""


async def retry_with_backoff(
    call: Callable[[], Awaitable[T]],
    *,
    operation: str,
    stop: asyncio.Event,
    retry_on: tuple[type[BaseException], ...],
    max_backoff_s: float = 10.0,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """Call until it succeeds, sleeping 0.2 s, 0.4 s, … (capped) between failures.

    Raises Stopping instead of retrying once `stop` is set.
    """
    delay = 0.2
    while True:
        try:
            return await call()
        except retry_on as exc:
            if stop.is_set():
                raise Stopping(operation) from exc
            if on_retry is not None:
                on_retry(operation)
            log.warning(
                "operation failed, retrying", operation=operation, error=repr(exc)[:500], delay_s=delay
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, max_backoff_s)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`, so a long-running loop can finish its work in hand and exit."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
