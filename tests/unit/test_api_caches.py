"""The API's caches on fakes: the bounded cache's rules (TTL, bounds, refused stale loads), GET details from
memory with read-your-writes, key records without a database trip, and following a fake change feed.

The same behaviours through the real app and MongoDB are in tests/integration/test_api_caches.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.services.api.auth.cache import CachingKeyStore, KeyRecordCache
from modelreg.services.api.caching.bounded import BoundedCache
from modelreg.services.api.caching.details import (
    CachedModelLookup,
    DetailsCache,
    InvalidatingModelRepository,
    ModelRecordCache,
)
from modelreg.services.api.caching.feed import follow
from modelreg.services.api.models.ports import ModelRepository
from modelreg.services.api.models.service import ModelService
from modelreg.services.changefeed.hub import SubscriberLagged
from modelreg.services.keys.service import KeyService
from modelreg.shared.api_keys import generate_key
from modelreg.shared.changes import ChangedCollection, ChangeOperation, RegistryChange
from modelreg.shared.contracts import ModelFormat, ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import ApiKeyDocument, ModelDetails
from modelreg.shared.settings import Settings
from tests.api_fakes import FakeArchiveStorage, FakeCommandPublisher, FakeModelStore
from tests.change_fakes import alias_change
from tests.fakes import FakeClock

KEY = ModelKey("ns", "m1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --- the bounded cache ------------------------------------------------------------------------------------


def cache(clock: FakeClock, **bounds) -> BoundedCache[str, str]:
    values = dict(ttl_s=5.0, max_entries=3, clock=clock)
    values.update(bounds)
    return BoundedCache(**values)


def test_an_entry_lives_its_ttl_and_no_longer() -> None:
    clock = FakeClock()
    entries = cache(clock)
    entries.put("a", "A", entries.begin())

    clock.now += 4.999
    assert entries.get("a") == "A"
    clock.now += 0.001
    assert entries.get("a") is None and len(entries) == 0


def test_the_least_recently_used_goes_beyond_max_entries() -> None:
    entries = cache(FakeClock())
    for key in "abc":
        entries.put(key, key.upper(), entries.begin())
    entries.get("a")  # a is used again: b is now the oldest

    entries.put("d", "D", entries.begin())

    assert [entries.get(k) for k in "abcd"] == ["A", None, "C", "D"]
    assert entries.stats.evictions == 1


def test_max_bytes_bounds_the_sum_of_sizes_and_refuses_what_never_fits() -> None:
    entries = cache(FakeClock(), max_entries=100, max_bytes=10, size_of=len)
    entries.put("a", "xxxx", entries.begin())
    entries.put("b", "yyyy", entries.begin())
    entries.put("c", "zzzz", entries.begin())  # 12 bytes: a goes

    assert entries.get("a") is None and entries.bytes == 8
    assert not entries.put("big", "w" * 11, entries.begin())
    assert entries.get("b") == "yyyy" and entries.get("c") == "zzzz"


def test_a_value_read_before_an_invalidation_is_not_stored_after_it() -> None:
    entries = cache(FakeClock())
    ticket = entries.begin()  # a read of "a" starts ...
    entries.invalidate("a")  # ... a write of "a" lands meanwhile

    assert not entries.put("a", "old", ticket)
    assert entries.get("a") is None
    assert entries.put("a", "new", entries.begin())  # a read started after the write is fine
    assert entries.put("b", "B", ticket)  # other keys are not affected


def test_clear_refuses_every_read_in_flight() -> None:
    entries = cache(FakeClock())
    ticket = entries.begin()
    entries.clear()
    assert not entries.put("a", "A", ticket)


def test_forgotten_invalidations_refuse_more_never_less() -> None:
    entries = cache(FakeClock(), max_entries=2)
    ticket = entries.begin()
    for key in "abcd":  # more invalidations than the cache remembers
        entries.invalidate(key)
    assert not any(entries.put(key, "old", ticket) for key in "abcd")


def test_a_zero_ttl_stores_nothing() -> None:
    entries = cache(FakeClock(), ttl_s=0)
    assert not entries.put("a", "A", entries.begin())
    assert entries.get("a") is None


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.integers(0, 3)),
        st.tuples(st.just("put"), st.sampled_from("abcde"), st.integers(0, 3), st.integers(1, 8)),
        st.tuples(st.just("invalidate"), st.sampled_from("abcde")),
        st.tuples(st.just("get"), st.sampled_from("abcde")),
        st.tuples(st.just("tick"), st.floats(0, 3)),
        st.tuples(st.just("clear")),
    ),
    max_size=60,
)


@given(OPERATIONS)
def test_bounds_hold_and_no_value_outlives_an_invalidation(operations) -> None:
    """Against a model: a get only returns a value whose read began after the key's last invalidation,
    within its TTL; entries and bytes stay within bounds whatever happens."""
    clock = FakeClock()
    entries: BoundedCache[str, str] = BoundedCache(
        ttl_s=2.0, max_entries=3, max_bytes=12, clock=clock, size_of=len
    )
    tickets = [entries.begin()] * 4
    began_at = [0] * 4  # index of the operation at which each slot's read began
    invalidated_at: dict[str, int] = {}
    stored: dict[str, tuple[str, int, float]] = {}  # key → (value, began at, stored at time)
    for step, operation in enumerate(operations, start=1):
        match operation:
            case ("begin", slot):
                tickets[slot], began_at[slot] = entries.begin(), step
            case ("put", key, slot, size):
                value = f"{key}{step}".ljust(size, ".")[:size]
                if entries.put(key, value, tickets[slot]):
                    assert began_at[slot] >= invalidated_at.get(key, 0)
                    stored[key] = (value, began_at[slot], clock.now)
            case ("invalidate", key):
                entries.invalidate(key)
                invalidated_at[key] = step
            case ("get", key):
                found = entries.get(key)
                if found is not None:
                    value, began, stored_at = stored[key]
                    assert found == value and began >= invalidated_at.get(key, 0)
                    assert clock.now - stored_at < 2.0
            case ("tick", seconds):
                clock.now += seconds
            case ("clear",):
                entries.clear()
                invalidated_at = {key: step for key in "abcde"}
        assert len(entries) <= 3 and entries.bytes <= 12


# --- GET details from memory ------------------------------------------------------------------------------


def details(key: ModelKey = KEY, **fields) -> ModelDetails:
    values = dict(
        model_id=key.model_id,
        namespace_id=key.namespace_id,
        name="resnet",
        version="1",
        model_archive_url="file:///a.tar.gz",
        model_format=ModelFormat.ONNX,
        model_hash="0" * 64,
        created_at=T0,
        updated_at=T0,
    )
    values.update(fields)
    return ModelDetails(**values)


class CountingStore(FakeModelStore):
    def __init__(self) -> None:
        super().__init__()
        self.detail_reads = 0

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        self.detail_reads += 1
        return await super().get_details(key)


class CachedRegistry:
    def __init__(self, tmp_path: Path, ttl_s: float = 5.0, max_entries: int = 100) -> None:
        self.clock = FakeClock()
        self.store = CountingStore()
        self.cache = DetailsCache(
            ttl_s=ttl_s, feed_ttl_s=300.0, max_entries=max_entries, max_bytes=1 << 20, clock=self.clock
        )
        self.records = ModelRecordCache(
            ttl_s=ttl_s, feed_ttl_s=300.0, max_entries=max_entries, max_bytes=1 << 20, clock=self.clock
        )
        self.publisher = FakeCommandPublisher()
        repository = InvalidatingModelRepository(self.store, self.cache, self.records)
        # What the inference route resolves models through.
        self.lookup = CachedModelLookup(repository, self.records)
        self.service = ModelService(
            repository,
            FakeArchiveStorage(tmp_path / "archives"),
            self.publisher,
            Settings(archive_root=str(tmp_path / "archives")),
            details_cache=self.cache,
        )

    async def get(self, key: ModelKey = KEY) -> tuple[dict, str]:
        body, etag = await self.service.reads.get_details_encoded(key)
        return json.loads(body), etag


@pytest.fixture
def registry(tmp_path) -> CachedRegistry:
    return CachedRegistry(tmp_path)


async def test_details_are_read_once_then_answered_from_memory_with_the_same_etag(registry) -> None:
    registry.store.add(details())

    first = await registry.get()
    second = await registry.get()

    assert first == second and registry.store.detail_reads == 1


async def test_a_deploy_request_of_this_process_is_seen_by_its_next_read(registry) -> None:
    registry.store.add(details())
    before, etag_before = await registry.get()
    assert before["model"]["deployment_status"] == "not_deployed"

    await registry.service.requests.request(KEY, DesiredState.DEPLOYED)

    after, etag_after = await registry.get()
    assert after["model"]["deployment_status"] == "pending" and etag_after != etag_before


async def test_a_deletion_of_this_process_is_seen_by_its_next_read(registry) -> None:
    registry.store.add(details())
    await registry.get()

    await registry.service.deletion.delete(KEY)

    with pytest.raises(Exception, match="Model not found"):
        await registry.get()


async def test_a_missing_model_is_never_cached(registry) -> None:
    with pytest.raises(Exception, match="Model not found"):
        await registry.get()
    registry.store.add(details())  # registered by another process

    assert (await registry.get())[0]["model"]["model_id"] == "m1"


async def test_another_process_write_shows_within_the_ttl_or_at_once_with_a_change(registry) -> None:
    registry.store.add(details())
    await registry.get()
    registry.store.add(details(task_type="detection"))  # the worker, say, behind the API's back

    assert (await registry.get())[0]["model"]["task_type"] is None  # stale, within the TTL
    registry.clock.now += 5.0
    assert (await registry.get())[0]["model"]["task_type"] == "detection"

    registry.store.add(details(task_type="segmentation"))
    registry.cache.apply(model_change(KEY, {"namespace_id": "ns", "model_id": "m1"}))
    assert (await registry.get())[0]["model"]["task_type"] == "segmentation"


async def test_a_read_racing_a_write_does_not_cache_what_it_read_before(registry) -> None:
    registry.store.add(details())
    gate = asyncio.Event()
    reading = asyncio.Event()
    original = registry.store.get_details

    async def slow_read(key: ModelKey) -> ModelDetails | None:
        found = await original(key)
        if not reading.is_set():  # only the first read (the GET's) is held
            reading.set()
            await gate.wait()
        return found

    registry.store.get_details = slow_read  # type: ignore[method-assign]
    read = asyncio.create_task(registry.get())
    await reading.wait()  # the read holds the old document ...
    await registry.service.requests.request(KEY, DesiredState.DEPLOYED)  # ... when this write lands
    gate.set()
    assert (await read)[0]["model"]["deployment_status"] == "not_deployed"
    registry.store.get_details = original  # type: ignore[method-assign]

    assert (await registry.get())[0]["model"]["deployment_status"] == "pending"


async def test_the_details_cache_keeps_its_entry_bound(tmp_path) -> None:
    registry = CachedRegistry(tmp_path, max_entries=2)
    keys = [ModelKey("ns", f"m{i}") for i in range(3)]
    for key in keys:
        registry.store.add(details(key))
        await registry.get(key)
    assert len(registry.cache.entries) == 2


def model_change(
    key: ModelKey | None, document: dict | None, operation=ChangeOperation.UPDATE
) -> RegistryChange:
    return RegistryChange(
        token=f"t-{id(document)}",
        collection=ChangedCollection.MODELS,
        operation=operation,
        document_id="0" * 24,
        namespace_id=None if key is None else key.namespace_id,
        document=document,
        committed_at=T0,
    )


async def test_model_lookups_are_read_once_and_follow_this_process_writes(registry) -> None:
    assert await registry.lookup.get_details(KEY) is None  # unknown: not cached
    registry.store.add(details())
    first = await registry.lookup.get_details(KEY)
    assert first is not None and first.desired_state is None
    assert await registry.lookup.get_details(KEY) is first and registry.store.detail_reads == 2

    await registry.service.requests.request(KEY, DesiredState.DEPLOYED)
    requested = await registry.lookup.get_details(KEY)
    assert requested is not None and requested.desired_state == DesiredState.DEPLOYED

    await registry.service.deletion.delete(KEY)
    assert await registry.lookup.get_details(KEY) is None


async def test_model_lookups_follow_the_feed(registry) -> None:
    registry.store.add(details())
    await registry.lookup.get_details(KEY)
    registry.store.add(details(task_type="detection"))  # the worker, behind the API's back

    registry.records.apply(model_change(KEY, {"namespace_id": "ns", "model_id": "m1"}))

    found = await registry.lookup.get_details(KEY)
    assert found is not None and found.task_type == "detection"


async def test_an_alias_change_drops_the_cached_details_of_its_namespace(registry) -> None:
    other = ModelKey("other", "m1")
    for key in (KEY, ModelKey("ns", "m2"), other):
        registry.store.add(details(key))
        await registry.get(key)

    registry.cache.apply(alias_change("ns"))

    assert registry.cache.get(KEY) is None and registry.cache.get(ModelKey("ns", "m2")) is None
    assert registry.cache.get(other) is not None


async def test_a_delete_from_the_feed_drops_the_models_of_its_namespace(registry) -> None:
    other = ModelKey("other", "m1")
    for key in (KEY, other):
        registry.store.add(details(key))
        await registry.get(key)

    registry.cache.apply(model_change(KEY, None, ChangeOperation.DELETE))

    assert registry.cache.get(KEY) is None and registry.cache.get(other) is not None


def test_every_method_of_the_model_repository_port_is_wrapped() -> None:
    port = {name for name, _ in inspect.getmembers(ModelRepository, inspect.isfunction)}
    wrapped = {name for name, _ in inspect.getmembers(InvalidatingModelRepository, inspect.isfunction)}
    assert {name for name in port if not name.startswith("_")} <= wrapped


# --- key records ------------------------------------------------------------------------------------------


class FakeKeyRecords:
    def __init__(self) -> None:
        self.records: dict[str, ApiKeyDocument] = {}
        self.finds = 0

    async def insert(
        self, prefix: str, key_hash: str, namespaces: Sequence[str], admin: bool
    ) -> ApiKeyDocument:
        record = ApiKeyDocument.model_construct(
            prefix=prefix, key_hash=key_hash, namespaces=list(namespaces), admin=admin, revoked=False
        )
        self.records[prefix] = record
        return record

    async def find(self, prefix: str) -> ApiKeyDocument | None:
        self.finds += 1
        found = self.records.get(prefix)
        return None if found is None else found.model_copy()

    async def list(self) -> list[ApiKeyDocument]:
        return list(self.records.values())

    async def revoke(self, prefix: str) -> bool:
        if prefix not in self.records:
            return False
        self.records[prefix] = self.records[prefix].model_copy(update={"revoked": True})
        return True


class Keys:
    def __init__(self, ttl_s: float = 5.0) -> None:
        self.clock = FakeClock()
        self.records = FakeKeyRecords()
        self.cache = KeyRecordCache(ttl_s=ttl_s, max_entries=10, clock=self.clock)
        self.service = KeyService(CachingKeyStore(self.records, self.cache), pepper="pepper")


async def test_a_known_key_is_checked_without_a_database_trip_after_the_first() -> None:
    keys = Keys()
    key, _ = await keys.service.create(["ns"])

    for _ in range(3):
        principal = await keys.service.authenticate(key)
        assert principal is not None and principal.namespaces == {"ns"}
    assert keys.records.finds == 1


async def test_a_cached_record_still_refuses_a_wrong_secret() -> None:
    keys = Keys()
    key, _ = await keys.service.create(["ns"])
    await keys.service.authenticate(key)

    assert await keys.service.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


async def test_a_revocation_of_this_process_takes_effect_at_once() -> None:
    keys = Keys()
    key, record = await keys.service.create(["ns"])
    await keys.service.authenticate(key)

    assert await keys.service.revoke(record.prefix)
    assert await keys.service.authenticate(key) is None


async def test_another_process_revocation_takes_effect_within_the_ttl_or_with_its_change() -> None:
    keys = Keys()
    key, record = await keys.service.create(["ns"])
    second, second_record = await keys.service.create(["ns"])
    await keys.service.authenticate(key)
    await keys.service.authenticate(second)
    await keys.records.revoke(record.prefix)  # `modelreg keys revoke`, another process
    await keys.records.revoke(second_record.prefix)

    assert await keys.service.authenticate(key) is not None  # within the TTL
    keys.clock.now += 5.0
    assert await keys.service.authenticate(key) is None

    keys.cache.apply(
        RegistryChange(
            token="t1",
            collection=ChangedCollection.API_KEYS,
            operation=ChangeOperation.UPDATE,
            document_id="0" * 24,
            namespace_id=None,
            document={"prefix": second_record.prefix, "revoked": True},
            committed_at=T0,
        )
    )
    assert await keys.service.authenticate(second) is None


async def test_an_unknown_key_is_never_cached() -> None:
    keys = Keys()
    generated = generate_key("pepper")

    assert await keys.service.authenticate(generated.key) is None
    await keys.records.insert(generated.prefix, generated.key_hash, ["ns"], False)  # another process

    assert await keys.service.authenticate(generated.key) is not None


# --- following the change feed ----------------------------------------------------------------------------


class FakeChangeSource:
    """A `ChangeSource` over a list of changes: each subscription yields those after `after`, then fails
    (`fail_after` set) or waits forever."""

    def __init__(
        self, changes: list[RegistryChange], fail_after: int | None = None, lag: bool = False
    ) -> None:
        self.changes = changes
        self.fail_after = fail_after
        self.lag = lag
        self.subscriptions: list[str | None] = []

    async def subscribe(self, after: str | None = None) -> AsyncIterator[RegistryChange]:
        self.subscriptions.append(after)
        tokens = [c.token for c in self.changes]
        start = tokens.index(after) + 1 if after is not None else 0
        for delivered, change in enumerate(self.changes[start:]):
            if self.fail_after is not None and delivered == self.fail_after:
                self.fail_after = None
                raise SubscriberLagged("fell behind") if self.lag else ConnectionError("feed lost")
            yield change
        await asyncio.Event().wait()


class Recorder:
    def __init__(self) -> None:
        self.applied: list[str] = []
        self.live: list[bool] = []

    def apply(self, change: RegistryChange) -> None:
        self.applied.append(change.token)

    def following(self, live: bool) -> None:
        self.live.append(live)


def change(token: str) -> RegistryChange:
    return RegistryChange(
        token=token,
        collection=ChangedCollection.MODELS,
        operation=ChangeOperation.UPDATE,
        document_id="0" * 24,
        namespace_id="ns",
        document={"namespace_id": "ns", "model_id": token},
        committed_at=T0,
    )


async def until(check) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_follow_applies_every_change_to_every_cache_in_order() -> None:
    source = FakeChangeSource([change(t) for t in ("a", "b", "c")])
    first, second = Recorder(), Recorder()
    task = asyncio.create_task(follow(source, first, second))

    await until(lambda: len(second.applied) == 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert first.applied == second.applied == ["a", "b", "c"]
    assert first.live == [True, False]


async def test_a_failed_feed_empties_the_caches_and_resumes_after_the_last_applied_change() -> None:
    source = FakeChangeSource([change(t) for t in ("a", "b", "c")], fail_after=2)
    recorder = Recorder()
    task = asyncio.create_task(follow(source, recorder, retry_s=0))

    await until(lambda: len(recorder.applied) == 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert recorder.applied == ["a", "b", "c"]
    assert source.subscriptions == [None, "b"]
    assert recorder.live[:3] == [True, False, True]


async def test_a_lagged_subscriber_empties_the_caches_and_resubscribes_from_now_at_once() -> None:
    source = FakeChangeSource([change(t) for t in ("a", "b", "c")], fail_after=2, lag=True)
    recorder = Recorder()
    # A retry delay longer than any test: resubscribing after a lag must not wait for it.
    task = asyncio.create_task(follow(source, recorder, retry_s=3600))

    await until(lambda: len(source.subscriptions) == 2 and len(recorder.applied) == 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The token of a lagged subscription is worthless: it starts again from now (here: the whole list).
    assert source.subscriptions == [None, None]
    assert recorder.applied == ["a", "b", "a", "b", "c"]
    assert recorder.live[:3] == [True, False, True]


async def test_feed_ttl_applies_while_following_and_a_lost_feed_forgets_entries(registry) -> None:
    registry.store.add(details())
    registry.cache.following(True)
    await registry.get()
    registry.clock.now += 100  # beyond the short TTL, within the feed's
    await registry.get()
    assert registry.store.detail_reads == 1

    registry.cache.following(False)
    await registry.get()
    assert registry.store.detail_reads == 2


async def test_an_alias_change_keeps_the_model_records(registry) -> None:
    registry.store.add(details(KEY))
    await registry.lookup.get_details(KEY)

    registry.records.apply(alias_change("ns"))  # records carry no aliases

    assert registry.records.get(KEY) is not None
