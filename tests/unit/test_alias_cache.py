"""A namespace's aliases from memory (services/api/caching/aliases.py) on fakes: read once per namespace,
invalidated by this process's alias writes, by writes to the models they point at and by the change feed.

Through the real app and MongoDB: tests/integration/test_api_caches.py.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

from modelreg.services.api.aliases.ports import AliasRepository
from modelreg.services.api.caching.aliases import (
    CachedAliasIndex,
    InvalidatingAliasStore,
    NamespaceAliasCache,
)
from modelreg.shared.alias_rules import AliasState
from modelreg.shared.contracts import ModelKey
from tests.alias_fakes import FakeAliasStore
from tests.change_fakes import alias_change
from tests.fakes import FakeClock

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def state(alias: str, model_id: str, namespace_id: str = "ns", revision: int = 1, **fields) -> AliasState:
    return AliasState(
        namespace_id=namespace_id,
        name="resnet",
        alias=alias,
        model_id=model_id,
        updated_at=T0,
        revision=revision,
        **fields,
    )


class Aliases:
    def __init__(self, ttl_s: float = 5.0) -> None:
        self.clock = FakeClock()
        self.store = FakeAliasStore()
        self.cache = NamespaceAliasCache(
            ttl_s=ttl_s, feed_ttl_s=300.0, max_entries=10, max_bytes=1 << 20, clock=self.clock
        )
        self.reads = CachedAliasIndex(self.store, self.cache)
        self.writes = InvalidatingAliasStore(self.store, self.cache)

    def stored(self, *states: AliasState) -> None:
        for s in states:
            self.store.aliases[(s.namespace_id, s.name, s.alias)] = s


@pytest.fixture
def aliases() -> Aliases:
    return Aliases()


async def test_a_namespace_is_read_once_for_every_alias_read(aliases) -> None:
    aliases.stored(state("prod", "m1"), state("canary", "m1"), state("old", "m2", previous_model_id="m0"))

    assert await aliases.reads.get("ns", "resnet", "prod") == state("prod", "m1")
    assert await aliases.reads.get("ns", "resnet", "missing") is None
    found = await aliases.reads.aliases_of("ns", ["m1", "m2", "m3"])
    assert found == {"m1": ["canary", "prod"], "m2": ["old"]}
    assert await aliases.reads.models_with_aliases("ns", ["prod", "old"]) == ["m1", "m2"]
    assert aliases.store.namespace_loads == 1


async def test_an_alias_write_of_this_process_is_seen_by_its_next_read(aliases) -> None:
    aliases.stored(state("prod", "m1"))
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m1"

    assert await aliases.writes.write(state("prod", "m1"), state("prod", "m2", revision=2))
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m2"

    assert await aliases.writes.remove(state("prod", "m2", revision=2))
    assert await aliases.reads.get("ns", "resnet", "prod") is None


async def test_a_lost_compare_and_set_still_drops_what_the_cache_holds(aliases) -> None:
    aliases.stored(state("prod", "m1"))
    await aliases.reads.get("ns", "resnet", "prod")
    aliases.stored(state("prod", "m3", revision=2))  # another process moved it; no change delivered yet

    assert not await aliases.writes.write(state("prod", "m1"), state("prod", "m2", revision=2))
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m3"


async def test_writers_read_the_stored_alias_not_the_cached_one(aliases) -> None:
    aliases.stored(state("prod", "m1"))
    await aliases.reads.get("ns", "resnet", "prod")
    aliases.stored(state("prod", "m3", revision=2))

    assert (await aliases.writes.get("ns", "resnet", "prod")).revision == 2


async def test_a_change_of_the_feed_drops_its_namespace_only(aliases) -> None:
    aliases.stored(state("prod", "m1"), state("prod", "x1", namespace_id="other"))
    await aliases.reads.get("ns", "resnet", "prod")
    await aliases.reads.get("other", "resnet", "prod")
    aliases.stored(state("prod", "m2", revision=2), state("prod", "x2", namespace_id="other", revision=2))

    aliases.cache.apply(alias_change("ns"))

    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m2"
    assert (await aliases.reads.get("other", "resnet", "prod")).model_id == "x1"
    aliases.cache.apply(alias_change(None))
    assert (await aliases.reads.get("other", "resnet", "prod")).model_id == "x2"


async def test_a_write_to_a_model_an_alias_refers_to_drops_the_namespace(aliases) -> None:
    aliases.stored(state("prod", "m1", previous_model_id="m0"))
    await aliases.reads.get("ns", "resnet", "prod")
    loads = aliases.store.namespace_loads

    aliases.cache.invalidate(ModelKey("ns", "m9"))  # no alias refers to it: kept
    await aliases.reads.get("ns", "resnet", "prod")
    assert aliases.store.namespace_loads == loads

    for referenced in ("m1", "m0"):  # the target, and the rollback target
        aliases.cache.invalidate(ModelKey("ns", referenced))
        await aliases.reads.get("ns", "resnet", "prod")
        loads += 1
        assert aliases.store.namespace_loads == loads


async def test_a_load_racing_a_write_does_not_cache_what_it_read_before(aliases) -> None:
    aliases.stored(state("prod", "m1"))
    original = aliases.store.in_namespace

    async def load_then_lose_the_race(namespace_id: str) -> list[AliasState]:
        found = await original(namespace_id)
        aliases.store.in_namespace = original  # type: ignore[method-assign]
        await aliases.writes.write(state("prod", "m1"), state("prod", "m2", revision=2))
        return found

    aliases.store.in_namespace = load_then_lose_the_race  # type: ignore[method-assign]
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m1"  # read before the write
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m2"


async def test_entries_live_their_ttl_and_a_lost_feed_forgets_them(aliases) -> None:
    aliases.stored(state("prod", "m1"))
    await aliases.reads.get("ns", "resnet", "prod")
    aliases.cache.following(True)
    aliases.stored(state("prod", "m2", revision=2))
    aliases.clock.now += 60  # past the 5 s TTL, within the feed TTL of the entry's next load
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m2"

    aliases.stored(state("prod", "m3", revision=3))
    aliases.clock.now += 60
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m2"  # the feed vouches for it
    aliases.cache.following(False)
    assert (await aliases.reads.get("ns", "resnet", "prod")).model_id == "m3"


async def test_with_the_cache_off_every_read_goes_to_the_store() -> None:
    off = Aliases(ttl_s=0)
    off.stored(state("prod", "m1"))

    assert (await off.reads.get("ns", "resnet", "prod")).model_id == "m1"
    off.stored(state("prod", "m2", revision=2))
    assert (await off.reads.get("ns", "resnet", "prod")).model_id == "m2"
    assert await off.reads.aliases_of("ns", ["m2"]) == {"m2": ["prod"]}
    assert await off.reads.models_with_aliases("ns", ["prod"]) == ["m2"]
    assert off.store.namespace_loads == 0


def test_every_method_of_the_alias_repository_port_is_wrapped() -> None:
    port = {name for name, _ in inspect.getmembers(AliasRepository, inspect.isfunction)}
    wrapped = {name for name, _ in inspect.getmembers(InvalidatingAliasStore, inspect.isfunction)}
    assert {name for name in port if not name.startswith("_")} <= wrapped
