"""Read path: GET model details vs. the limit (raw find_one on the same server) vs. MLflow's registry."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import httpx
from pymongo import AsyncMongoClient

from bench.figures import NO_FIGURE, figure, ratio
from bench.load import LoadResult, closed_loop
from bench.stack import BenchStack, bearer, rss_bytes
from bench.tables import Table
from modelreg.services.testing.documents import seed_model_document

NAMESPACE = "ns_bench"
CEILING = "ceiling: GET /v1/whoami"


def model_document(model_id: str) -> dict:
    now = datetime.now(UTC)
    return seed_model_document(NAMESPACE, model_id, created_at=now, updated_at=now)


def model_ids(count: int) -> list[str]:
    return [f"model_{i:05d}" for i in range(count)]


async def seed_models(stack: BenchStack, count: int) -> list[str]:
    ids = model_ids(count)
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url)
    try:
        collection = client[stack.settings.mongodb_database].custom_models
        await collection.delete_many({})
        # The unique (namespace_id, model_id) index is created by the API at start-up, as in production.
        await collection.insert_many([model_document(m) for m in ids])
    finally:
        await client.close()
    return ids


async def seed_mlflow(url: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        semaphore = asyncio.Semaphore(8)

        async def create(model_id: str) -> None:
            async with semaphore:
                response = await http.post(
                    "/api/2.0/mlflow/registered-models/create", json={"name": f"{NAMESPACE}.{model_id}"}
                )
                if response.status_code != 200 and "RESOURCE_ALREADY_EXISTS" not in response.text:
                    raise RuntimeError(f"mlflow create failed: {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(create(m) for m in ids))


class PeakRss:
    """Samples a process tree's RSS while a block runs; keeps the highest value."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid, self.interval_s, self.peak = pid, interval_s, 0
        self._task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(self.interval_s)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class ReadResults:
    table: Table
    ratios: Table
    peak_rss: dict[str, int]
    # Per process: why its load failed (its peak RSS was then measured under refusals), else None.
    load_failure: dict[str, str | None]
    # (target, clients) → its load, for the goals table.
    results: dict[tuple[str, int], LoadResult]


def status_error(status: int) -> str | None:
    return None if status == 200 else f"HTTP {status}"


async def run(
    stack: BenchStack,
    api_key: str,
    ids: list[str],
    duration_s: float,
    concurrencies: list[int],
    with_mlflow: bool,
) -> ReadResults:
    rng = random.Random(7)
    keys = [rng.choice(ids) for _ in range(100_000)]
    results: dict[tuple[str, int], LoadResult] = {}
    peaks = {"api": 0, "mlflow": 0}
    mongo: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, maxPoolSize=max(concurrencies))
    collection = mongo[stack.settings.mongodb_database].custom_models
    # aiohttp as the load generator: it costs the shared cores far less per request than httpx does.
    api_http = aiohttp.ClientSession(
        stack.api_url, headers=bearer(api_key), connector=aiohttp.TCPConnector(limit=max(concurrencies))
    )
    mlflow_http = (
        aiohttp.ClientSession(stack.mlflow.url, connector=aiohttp.TCPConnector(limit=max(concurrencies)))
        if with_mlflow and stack.mlflow
        else None
    )

    async def api(i: int) -> str | None:
        async with api_http.get(f"/v1/namespaces/{NAMESPACE}/models/{keys[i % len(keys)]}") as response:
            await response.read()
            return status_error(response.status)

    async def ceiling(i: int) -> str | None:
        # An authenticated route that reads nothing: what the HTTP stack and the key check cost alone.
        async with api_http.get("/v1/whoami") as response:
            await response.read()
            return status_error(response.status)

    async def limit(i: int) -> str | None:
        # What the API's own read does, without HTTP, validation or serialisation around it.
        doc = await collection.find_one(
            {"namespace_id": NAMESPACE, "model_id": keys[i % len(keys)]}, {"deployment_history": 0}
        )
        return None if doc is not None else "no document"

    async def mlflow(i: int) -> str | None:
        assert mlflow_http is not None
        name = f"{NAMESPACE}.{keys[i % len(keys)]}"
        async with mlflow_http.get(
            "/api/2.0/mlflow/registered-models/get", params={"name": name}
        ) as response:
            await response.read()
            return status_error(response.status)

    try:
        for concurrency in concurrencies:
            async with PeakRss(stack.api.process.pid) as api_peak:
                results["API", concurrency] = await closed_loop(api, concurrency, duration_s)
            peaks["api"] = max(peaks["api"], api_peak.peak)
            results[CEILING, concurrency] = await closed_loop(ceiling, concurrency, duration_s)
            results["limit: find_one", concurrency] = await closed_loop(limit, concurrency, duration_s)
            if mlflow_http is not None:
                async with PeakRss(stack.mlflow.process.pid) as mlflow_peak:
                    results["MLflow", concurrency] = await closed_loop(mlflow, concurrency, duration_s)
                peaks["mlflow"] = max(peaks["mlflow"], mlflow_peak.peak)
    finally:
        await api_http.close()
        if mlflow_http is not None:
            await mlflow_http.close()
        await mongo.close()

    table = Table(
        f"Read: GET model details, {len(ids)} models, {duration_s:g} s per cell",
        ["clients", "target", "req/s", "p50 ms", "p99 ms", "errors"],
    )
    ratios = Table(
        "Read ratios (same run)",
        [
            "clients",
            "API/limit req/s",
            "API/ceiling req/s",
            "API/MLflow req/s",
            "API/limit p99",
            "API/MLflow p99",
        ],
    )
    not_run = figure(0.0, "not run")
    for concurrency in concurrencies:
        for target in ("API", CEILING, "limit: find_one", "MLflow"):
            r = results.get((target, concurrency))
            if r is None:
                continue
            if r.failure is not None:
                table.add(concurrency, target, r.rps.text(",.0f"), NO_FIGURE, NO_FIGURE, f"{r.error_count:,}")
                table.fail(f"{target}, {concurrency} clients", r.failure)
            else:
                table.add(concurrency, target, r.rps.text(",.0f"), r.p50.text(".2f"), r.p99.text(".2f"), 0)
        api_r, limit_r = results["API", concurrency], results["limit: find_one", concurrency]
        mlflow_r = results.get(("MLflow", concurrency))
        ratios.add(
            concurrency,
            ratio(api_r.rps, limit_r.rps),
            ratio(api_r.rps, results[CEILING, concurrency].rps),
            ratio(api_r.rps, mlflow_r.rps if mlflow_r else not_run),
            ratio(api_r.p99, limit_r.p99),
            ratio(api_r.p99, mlflow_r.p99 if mlflow_r else not_run),
        )

    def load_failure(target: str) -> str | None:
        failures = [r.failure for (t, _), r in results.items() if t == target and r.failure is not None]
        return f"its {target} read load failed" if failures else None

    ratios.notes.append(f"{CEILING}: an authenticated route that touches no database")
    return ReadResults(
        table, ratios, peaks, {"api": load_failure("API"), "mlflow": load_failure("MLflow")}, results
    )
