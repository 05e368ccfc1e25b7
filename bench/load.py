"""Closed-loop load: N clients, each sending its next request as soon as the previous one answered."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def closed_loop(
    request: Callable[[int], Awaitable[bool]], concurrency: int, duration_s: float, warmup_s: float = 1.0
) -> LoadResult:
    """Run `request(i)` from `concurrency` clients for `duration_s` after a warm-up.

    `request` returns whether the answer was the expected one; anything else counts as an error.
    """
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = time.perf_counter() + warmup_s + duration_s

    async def client(client_index: int) -> None:
        nonlocal errors
        i = client_index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            ok = await request(i)
            elapsed = time.perf_counter() - started
            if measuring:
                latencies.append(elapsed)
                errors += not ok
            i += concurrency

    tasks = [asyncio.create_task(client(c)) for c in range(concurrency)]
    await asyncio.sleep(warmup_s)
    measuring = True
    measured_from = time.perf_counter()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - measured_from
    latencies.sort()
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99) * 1000,
    )
