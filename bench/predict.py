"""Inference route: POST …/models/{id}/predict (and through an alias) vs. calling the endpoint directly.

One client in a closed loop per cell, so p50 is the latency one request pays: the difference between the
route's p50 and the direct call's is the overhead the registry adds (goal: at most 2 ms).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import aiohttp
from pymongo import AsyncMongoClient

from bench.figures import NO_FIGURE, Figure, figure, joined_failures
from bench.load import LoadResult, closed_loop
from bench.read_api import NAMESPACE, model_document
from bench.stack import BenchStack, bearer
from bench.tables import Table
from modelreg.services.devstack import embedded

MODEL_ID = "model_predict"
BODY = b'{"inputs": {"x": [[1.0, 2.0, 3.0]]}}'
GOAL_MS = 2.0


async def register(stack: BenchStack, endpoint: str) -> None:
    """A deployed model whose endpoint is the stand-in, and an alias pointing at it."""
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url, tz_aware=True)
    try:
        database = client[stack.settings.mongodb_database]
        document = model_document(MODEL_ID) | {
            "name": "bench-predict",
            "deployed": True,
            "deployment_status": "deployed",
            "deployment_info": {"endpoint": endpoint, "base_image": "img", "deployed_at": datetime.now(UTC)},
        }
        await database.custom_models.replace_one(
            {"namespace_id": NAMESPACE, "model_id": MODEL_ID}, document, upsert=True
        )
    finally:
        await client.close()


async def listening(port: int, process: subprocess.Popen[bytes], attempts: int = 150) -> None:
    for _ in range(attempts):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("the stand-in endpoint exited") from None
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the stand-in endpoint is not listening on {port}")


async def run(stack: BenchStack, api_key: str, duration_s: float) -> tuple[Table, Figure]:
    """The table, and the p50 the worse of the two inference routes adds over the direct call."""
    port = embedded.free_port()
    endpoint_url = f"http://127.0.0.1:{port}/{NAMESPACE}/{MODEL_ID}"
    endpoint = subprocess.Popen([sys.executable, "-m", "bench.endpoint", str(port)])
    results: dict[str, LoadResult] = {}
    direct_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    api_http = aiohttp.ClientSession(
        stack.api_url, headers=bearer(api_key), connector=aiohttp.TCPConnector(limit=1)
    )
    headers = {"content-type": "application/json"}
    try:
        await listening(port, endpoint)
        await register(stack, endpoint_url)
        async with api_http.put(
            f"/v1/namespaces/{NAMESPACE}/names/bench-predict/aliases/production", json={"model_id": MODEL_ID}
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"alias not set: {response.status} {await response.text()}")

        async def post(http: aiohttp.ClientSession, url: str) -> str | None:
            async with http.post(url, data=BODY, headers=headers) as response:
                await response.read()
                return None if response.status == 200 else f"HTTP {response.status}"

        async def details(i: int) -> str | None:
            async with api_http.get(f"/v1/namespaces/{NAMESPACE}/models/{MODEL_ID}") as response:
                await response.read()
                return None if response.status == 200 else f"HTTP {response.status}"

        targets = {
            "endpoint directly": lambda i: post(direct_http, endpoint_url),
            "API floor: GET …/models/{id}": details,
            "API: …/models/{id}/predict": lambda i: post(
                api_http, f"/v1/namespaces/{NAMESPACE}/models/{MODEL_ID}/predict"
            ),
            "API: …/aliases/{alias}/predict": lambda i: post(
                api_http, f"/v1/namespaces/{NAMESPACE}/names/bench-predict/aliases/production/predict"
            ),
        }
        for name, request in targets.items():
            results[name] = await closed_loop(request, 1, duration_s)
    finally:
        await direct_http.close()
        await api_http.close()
        endpoint.terminate()
        endpoint.wait(10)

    table = Table(
        f"Inference route overhead: 1 client, {duration_s:g} s per cell "
        f"(goal: at most {GOAL_MS:g} ms added at p50)",
        ["target", "req/s", "p50 ms", "p99 ms", "added p50 ms", "errors"],
    )
    direct = results["endpoint directly"]
    overhead = worst_added_p50(results)
    for name, r in results.items():
        if r.failure is not None:
            table.add(name, r.rps.text(",.0f"), NO_FIGURE, NO_FIGURE, NO_FIGURE, f"{r.error_count:,}")
            table.fail(name, r.failure)
            continue
        added = figure(r.p50_ms - direct.p50_ms, direct.failure)
        shown = added.text(".2f") if "predict" in name else NO_FIGURE
        table.add(name, r.rps.text(",.0f"), r.p50.text(".2f"), r.p99.text(".2f"), shown, 0)
    table.notes.append(
        "the endpoint is a stand-in (aiohttp, fixed answer, own process); the route adds: the key check, "
        "the model's record (and the alias) from the API's caches, the forward over a pooled connection, "
        "the answer"
    )
    table.notes.append(
        "API floor: the details read through the same API (key check, details from the cache, no "
        "forward), for what any request costs there on this machine at this moment"
    )
    return table, overhead


def worst_added_p50(results: dict[str, LoadResult]) -> Figure:
    """The larger p50 added by a predict route over the direct call; failed when any of them failed."""
    direct = results["endpoint directly"]
    routes = [r for name, r in results.items() if "predict" in name]
    failure = joined_failures(direct.failure, *(r.failure for r in routes))
    if failure is not None or not routes:
        return figure(0.0, failure or "no inference route measured")
    return figure(max(r.p50_ms for r in routes) - direct.p50_ms)
