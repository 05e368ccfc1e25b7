"""Scale: the registry at 1k, 10k and 100k models — GET details, a filtered list page, the worker with one
and two processes in its group, and the API's memory.

Models are added to the benchmark namespace size after size (bulk inserts), so each size holds the
previous ones. Each worker run gets a topic of two partitions and a group of its own: with two workers each
owns one partition.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp
import msgspec
from pymongo import AsyncMongoClient

from bench.figures import NO_FIGURE, Figure, figure, joined_failures, ratio, unseen_failure
from bench.load import LoadResult, closed_loop
from bench.read_api import NAMESPACE, model_document, model_ids, status_error
from bench.stack import BenchStack, bearer, rss_bytes, worker_process
from bench.tables import Table
from bench.worker_apply import OBSERVED_FIELDS, event_stream, produce, wait_for_last_sequences
from modelreg.shared.adapters import kafka
from modelreg.shared.adapters.mongo.listing import LIST_SORTS, ModelFilter, listing_query

SEED_CHUNK = 10_000
WORKER_PARTITIONS = 2
# Few list clients: on SecantusDB a page at 100k models takes seconds (docs/performance.md, "Indexes").
LIST_CLIENTS = 4
# Filters and orders of the list route, taken in turn: each a page of 20 from the start.
LIST_QUERIES = [
    {"task_type": "detection", "limit": 20},
    {"deployed": "false", "sort": "name", "limit": 20},
    {"model_format": "onnx", "sort": "-created_at", "limit": 20},
    {"task_type": "classification", "sort": "created_at", "limit": 20},
    {"name": "name-model_00042", "limit": 20},
]
TASK_TYPES = ("classification", "detection", "segmentation", "embedding")
# The warm GET cell: this many models drawn at random over every size's models, each read once first.
WORKING_SET = 1_000
DEFAULT_SORT = "-created_at"  # the list route's


def raw_list_query(params: dict) -> tuple[dict, list, int]:
    """The list route's two database queries for `params`: the filter (for the count and the page), the
    sort and the page size, built by the same adapter functions the route uses."""
    fields = {k: v for k, v in params.items() if k in ("task_type", "model_format", "name")}
    if "deployed" in params:
        fields["deployed"] = params["deployed"] == "true"
    query = listing_query(NAMESPACE, ModelFilter(**fields))
    sort = [(field, int(direction)) for field, direction in LIST_SORTS[params.get("sort", DEFAULT_SORT)]]
    return query, sort, int(params["limit"])


def scaled_document(model_id: str, index: int) -> dict:
    document = model_document(model_id)
    document["task_type"] = TASK_TYPES[index % len(TASK_TYPES)]
    return document


async def seed_up_to(stack: BenchStack, have: int, size: int) -> list[str]:
    """Adds models `have`..`size` in bulk; returns every id (the read and worker benchmarks' come first)."""
    ids = model_ids(size)
    client: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url)
    try:
        collection = client[stack.settings.mongodb_database].custom_models
        for start in range(have, size, SEED_CHUNK):
            chunk = range(start, min(size, start + SEED_CHUNK))
            await collection.insert_many([scaled_document(ids[i], i) for i in chunk], ordered=False)
    finally:
        await client.close()
    return ids


@dataclass
class SizeResult:
    size: int
    seed_s: float
    get: LoadResult
    warm_get: LoadResult
    listing: LoadResult
    raw_get: LoadResult
    raw_listing: LoadResult
    workers: dict[int, Figure] = field(default_factory=dict)
    api_rss: int = 0


async def worker_rate(stack: BenchStack, ids: list[str], workers: int, per_model: int, run: str) -> Figure:
    """Events/s of `workers` worker processes in one group, produce → the DB shows every last sequence."""
    settings = msgspec.structs.replace(
        stack.settings, events_topic=f"scale-{run}", consumer_group=f"scale-{run}", log_level="WARNING"
    )
    await kafka.ensure_topics(settings, [settings.events_topic], partitions=WORKER_PARTITIONS)
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url)
    collection = client[settings.mongodb_database].custom_models
    await collection.update_many(
        {"namespace_id": NAMESPACE, "model_id": {"$in": ids}},
        {"$unset": dict.fromkeys(OBSERVED_FIELDS, "")},
    )
    processes = [worker_process(stack, settings, f"worker-{run}-{n}") for n in range(workers)]
    producer = kafka.make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    try:
        for process in processes:
            process.start()
        # The group settles first: one partition to each worker.
        await asyncio.sleep(settings.worker_session_timeout_ms / 1000)
        await producer.start()
        events = event_stream(ids, per_model, seed=11)
        started = time.perf_counter()
        await produce(producer, settings.events_topic, events)
        shown = await wait_for_last_sequences(collection, ids, per_model)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
        for process in processes:
            process.stop()
        await client.close()
    return figure(len(events) / elapsed, unseen_failure(len(ids), shown, "models' last sequences"))


async def measure_size(
    stack: BenchStack, api_key: str, size: int, have: int, seconds: float, worker_models: int, per_model: int
) -> SizeResult:
    started = time.perf_counter()
    ids = await seed_up_to(stack, have, size)
    seed_s = time.perf_counter() - started
    rng = random.Random(size)
    keys = [rng.choice(ids) for _ in range(50_000)]
    working_set = rng.sample(ids, min(WORKING_SET, len(ids)))
    async with aiohttp.ClientSession(
        stack.api_url, headers=bearer(api_key), connector=aiohttp.TCPConnector(limit=32)
    ) as http:

        async def get_model(model_id: str) -> str | None:
            async with http.get(f"/v1/namespaces/{NAMESPACE}/models/{model_id}") as response:
                await response.read()
                return status_error(response.status)

        async def get(i: int) -> str | None:
            return await get_model(keys[i % len(keys)])

        async def get_warm(i: int) -> str | None:
            return await get_model(working_set[i % len(working_set)])

        async def page(i: int) -> str | None:
            query = LIST_QUERIES[i % len(LIST_QUERIES)]
            async with http.get(f"/v1/namespaces/{NAMESPACE}/models", params=query) as response:
                await response.read()
                return status_error(response.status)

        get_result = await closed_loop(get, 32, seconds)
        for model_id in working_set:  # read once, so the warm cell measures a filled cache
            await get_model(model_id)
        warm_result = await closed_loop(get_warm, 32, seconds)
        rss = rss_bytes(stack.api.process.pid)
        list_result = await closed_loop(page, LIST_CLIENTS, seconds)
    mongo: AsyncMongoClient = AsyncMongoClient(stack.settings.mongodb_url)
    collection = mongo[stack.settings.mongodb_database].custom_models

    async def raw_get(i: int) -> str | None:
        # The GET's own database read at this size (the read table's "limit: find_one").
        doc = await collection.find_one(
            {"namespace_id": NAMESPACE, "model_id": keys[i % len(keys)]}, {"deployment_history": 0}
        )
        return None if doc is not None else "no document"

    async def raw_page(i: int) -> str | None:
        query, sort, limit = raw_list_query(LIST_QUERIES[i % len(LIST_QUERIES)])
        await collection.count_documents(query)
        await collection.find(query, {"deployment_history": 0}).sort(sort).limit(limit).to_list()
        return None

    try:
        raw_get_result = await closed_loop(raw_get, 32, seconds)
        raw_list_result = await closed_loop(raw_page, LIST_CLIENTS, seconds)
    finally:
        await mongo.close()
    result = SizeResult(
        size, seed_s, get_result, warm_result, list_result, raw_get_result, raw_list_result, api_rss=rss
    )
    # The newest models: untouched by the other benchmarks' events.
    chosen = ids[-worker_models:]
    for workers in (1, 2):
        result.workers[workers] = await worker_rate(stack, chosen, workers, per_model, f"{size}-{workers}")
    return result


def tables(results: list[SizeResult], seconds: float, worker_models: int, per_model: int) -> list[Table]:
    table = Table(
        f"Scale: {seconds:g} s per cell; GET details by 32 clients, "
        f"list pages (filtered, 20 a page) by {LIST_CLIENTS}",
        [
            "models",
            "seed s",
            "GET req/s",
            "GET p99 ms",
            "limit: find_one req/s",
            f"GET req/s, {WORKING_SET:,} warm",
            "list req/s",
            "list p99 ms",
            "limit: raw list p99 ms",
            "worker events/s, 1",
            "worker events/s, 2",
            "2/1 workers",
            "API RSS MiB",
        ],
    )
    for r in results:
        cells: list[str] = [f"{r.size:,}", f"{r.seed_s:.1f}"]
        for name, load, limit in (("GET", r.get, r.raw_get), ("list", r.listing, r.raw_listing)):
            if load.failure is not None:
                cells += [load.rps.text(",.0f"), NO_FIGURE]
                table.fail(f"{name}, {r.size:,} models", load.failure)
            else:
                cells += [load.rps.text(",.0f"), load.p99.text(".1f")]
            cells.append(limit.rps.text(",.0f") if name == "GET" else limit.p99.text(".1f"))
            if limit.failure is not None:
                table.fail(f"raw {name}, {r.size:,} models", limit.failure)
            if name == "GET":
                cells.append(r.warm_get.rps.text(",.0f"))
                if r.warm_get.failure is not None:
                    table.fail(f"warm GET, {r.size:,} models", r.warm_get.failure)
        for workers in (1, 2):
            rate = r.workers[workers]
            cells.append(rate.text(",.0f"))
            if rate.failure is not None:
                table.fail(f"{workers} worker(s), {r.size:,} models", rate.failure)
        cells.append(ratio(r.workers[2], r.workers[1]))
        rss = figure(r.api_rss / 2**20, None if r.api_rss else "process not running")
        cells.append(rss.text(".0f"))
        table.add(*cells)
    table.notes.append(
        "GET req/s: keys drawn at random over every model (at 10k and 100k most GETs find the details "
        "cache cold, so the rate follows the database's: a cold GET is one find_one); limit: find_one: "
        "that read sent straight to the database by 32 clients, same keys"
    )
    table.notes.append(
        f"GET req/s, {WORKING_SET:,} warm: {WORKING_SET:,} models drawn at random over every model, each "
        "read once before the cell (a service's steady state: the cache holds what is read): the flatness "
        "goal's figure; the cold rate's own flatness is the GET req/s column's"
    )
    table.notes.append(
        "limit: raw list: the list route's own two queries (count, then the sorted page without histories) "
        f"sent straight to the database by {LIST_CLIENTS} clients, same filters and orders: what the "
        "database alone costs for a page at that size"
    )
    table.notes.append(
        "two workers share the one database: where one worker already runs near the database's "
        "guarded-update rate (the worker table's limit rows, measured at the read table's size), a second "
        "one cannot add much; on SecantusDB each guarded write also costs more as the collection grows"
    )
    table.notes.append(
        f"workers: {per_model} events for each of {worker_models:,} models per run, on a topic of "
        f"{WORKER_PARTITIONS} partitions; list queries in turn: "
        + "; ".join("&".join(f"{k}={v}" for k, v in q.items() if k != "limit") for q in LIST_QUERIES)
    )
    return [table]


def get_flatness(results: list[SizeResult]) -> Figure:
    """The smallest warm GET rate across sizes over the largest (1.0: flat)."""
    rates = [r.warm_get.rps for r in results]
    failure = joined_failures(*(rate.failure for rate in rates)) if rates else "not run"
    if failure is not None:
        return figure(0.0, failure)
    return figure(min(rate.value for rate in rates) / max(rate.value for rate in rates))


async def run(
    stack: BenchStack,
    api_key: str,
    sizes: list[int],
    have: int,
    seconds: float,
    worker_models: int,
    per_model: int,
) -> tuple[list[Table], list[SizeResult]]:
    results = []
    for size in sorted(sizes):
        results.append(
            await measure_size(stack, api_key, size, max(have, 0), seconds, worker_models, per_model)
        )
        have = max(have, size)
    return tables(results, seconds, worker_models, per_model), results
