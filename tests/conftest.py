from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from modelreg.services.devstack import embedded
from modelreg.services.testing.infra import Infra, start_infra
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.settings import Settings

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    """The `modelreg` plugin loads from the package's entry point; an install made before the entry point
    existed lacks it, so register it here under the same name (`-p no:modelreg` still turns it off)."""
    manager = config.pluginmanager
    if not manager.has_plugin("modelreg") and not manager.is_blocked("modelreg"):
        from modelreg.services.testing import plugin

        manager.register(plugin, "modelreg")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` as tests/xdist_groups.py sets it: a file, or a group of files, per work unit."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.xdist_groups import GroupScheduling

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses a shared Ray cluster from a file outside its group is a usage error."""
    from tests.xdist_groups import group_mismatch

    for item in items:
        problem = group_mismatch(item.nodeid.split("::", 1)[0], getattr(item, "fixturenames", ()))
        if problem:
            raise pytest.UsageError(problem)


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    with contextlib.ExitStack() as stack:
        yield start_infra(stack, tmp_path_factory.mktemp("infra"))


def make_settings(infra: Infra, **overrides: Any) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, Any] = dict(
        mongodb_url=infra.mongodb_url,
        mongodb_database=f"test_{suffix}",
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        kafka_idempotent=infra.kafka_idempotent,
        events_topic=f"events-{suffix}",
        dlq_topic=f"events-{suffix}.dlq",
        commands_topic=f"commands-{suffix}",
        cluster_health_topic=f"health-{suffix}",
        consumer_group=f"worker-{suffix}",
        topic_partitions=3,
        worker_session_timeout_ms=3000,
        worker_heartbeat_interval_ms=500,
        worker_batch_timeout_ms=200,
        worker_retry_max_backoff_s=1.0,
        bridge_retry_max_backoff_s=1.0,
        archive_root="",
        log_format="console",
        # Tests write the database behind the API's back (as another process would) and read at once:
        # the API's caches are off unless a test turns them on (tests/integration/test_api_caches.py).
        api_auth_cache_ttl_s=0,
        api_details_cache_ttl_s=0,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(infra: Infra, tmp_path) -> Settings:
    return make_settings(
        infra, archive_root=str(tmp_path / "archives"), bridge_work_dir=str(tmp_path / "bridge")
    )


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    return settings


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Any]:
    client = await mongo.connect(settings)
    yield client[settings.mongodb_database]
    await client.drop_database(settings.mongodb_database)
    await client.close()


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = kafka.make_producer(settings)
    await producer.start()
    yield producer
    await producer.stop()


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float = 30, interval_s: float = 0.2) -> T:
    """Poll until `check` returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout_s
    last_error: AssertionError | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            if last_error:
                raise last_error
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


async def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    """All records of a topic (at least `expected` of them), read without a consumer group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        # Anything beyond `expected` that is already there.
        batch = await consumer.getmany(timeout_ms=500)
        for partition_records in batch.values():
            records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def make_key(db, settings: Settings) -> Callable[..., Awaitable[str]]:
    """Create an API key: `await make_key("ns_a", "ns_b")` or `await make_key(admin=True)`."""

    async def create(*namespaces: str, admin: bool = False) -> str:
        return await insert_api_key(db, settings, *namespaces, admin=admin)

    return create


async def insert_api_key(database: Any, settings: Settings, *namespaces: str, admin: bool = False) -> str:
    """Store a new key with the test's own client (Beanie binds to the app's client once an app started)."""
    from modelreg.shared.api_keys import generate_key
    from modelreg.shared.documents import ApiKeyDocument

    generated = generate_key(settings.api_key_pepper)
    record = ApiKeyDocument(
        prefix=generated.prefix, key_hash=generated.key_hash, namespaces=sorted(namespaces), admin=admin
    )
    await database[ApiKeyDocument.Settings.name].insert_one(record.model_dump(exclude={"id", "revision_id"}))
    return generated.key


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local moto S3 server per test process, started by the first test that needs one (`s3_url`)."""
    server = embedded.moto(tmp_path_factory.mktemp("moto")).start(timeout_s=60)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def s3_url(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A local moto S3 server, empty as if just started (its state is reset for each test; one server
    process serves them all, as starting one costs a second of CPU), with credentials in the environment."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    httpx.post(f"{moto_server}/moto-api/reset", timeout=30).raise_for_status()
    return moto_server
