"""Retrying an operation against MongoDB or Kafka while they are unavailable."""

from __future__ import annotations

import asyncio
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
