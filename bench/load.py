"""Closed-loop load: N clients, each sending its next request as soon as the previous one answered."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.figures import Figure, figure, load_cell_failure


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: Counter[str]  # reason → count, over the measured requests
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def failure(self) -> str | None:
        return load_cell_failure(self.requests - self.error_count, self.errors)

    @property
    def rps(self) -> Figure:
        return figure(self.requests / self.seconds if self.seconds else 0.0, self.failure)

    @property
    def p50(self) -> Figure:
        return figure(self.p50_ms, self.failure)

    @property
    def p99(self) -> Figure:
        return figure(self.p99_ms, self.failure)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def closed_loop(
    request: Callable[[int], Awaitable[str | None]],
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
) -> LoadResult:
    """Run `request(i)` from `concurrency` clients for `duration_s` after a warm-up.

    `request` returns None for the expected answer, else what was wrong ("HTTP 401"); an exception it
    raises counts as an error named by its type, so one refused connection does not end the whole run.
    """
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    measuring = False
    stop_at = time.perf_counter() + warmup_s + duration_s

    async def client(client_index: int) -> None:
        i = client_index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                error = await request(i)
            except Exception as exc:  # reported in the cell, which then fails
                error = type(exc).__name__
            elapsed = time.perf_counter() - started
            if measuring:
                latencies.append(elapsed)
                if error is not None:
                    errors[error] += 1
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
