"""The change hub's fan-out and the watch service's stream, on an in-memory feed."""

from __future__ import annotations

import asyncio
import json

import pytest

from modelreg.services.api.watch.service import WatchService
from modelreg.services.changefeed.hub import ChangeHub, SubscriberLagged, running
from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import ModelDetails
from tests.change_fakes import FakeFeed, model_document


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_every_subscriber_gets_every_change_in_order_from_one_stream() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed, buffer_size=100)) as hub:
        first, second = hub.open_subscription(), hub.open_subscription()
        committed = [feed.commit(model_id=f"m{i}") for i in range(10)]
        for subscription in (first, second):
            got = [await subscription.next(5) for _ in committed]
            assert [c.token for c in got if c] == [c.token for c in committed]
        assert feed.opened == 1
        first.close()
        second.close()
        assert hub.subscriber_count == 0


async def test_subscribe_after_a_token_replays_then_continues_without_gap_or_duplicate() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed, buffer_size=100)) as hub:
        seen = [feed.commit(model_id=f"m{i}") for i in range(5)]
        await settle()
        subscription = hub.open_subscription(after=seen[1].token)
        later = [feed.commit(model_id=f"late{i}") for i in range(3)]
        await settle()  # the live queue holds the late ones; the replay holds them too
        got = [await subscription.next(5) for _ in range(6)]
        assert [c.token for c in got if c] == [c.token for c in seen[2:] + later]
        assert await subscription.next(0.05) is None


async def test_the_async_iterator_of_the_change_source_protocol() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed)) as hub:
        stream = hub.subscribe()
        pending = asyncio.ensure_future(anext(stream))
        await settle()
        change = feed.commit()
        assert (await asyncio.wait_for(pending, 5)).token == change.token
        await stream.aclose()


async def test_a_slow_subscriber_is_cut_off_without_holding_back_the_others() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed, buffer_size=3)) as hub:
        slow = hub.open_subscription()
        fast = hub.open_subscription(buffer_size=100)
        committed = [feed.commit(model_id=f"m{i}") for i in range(8)]
        await settle()
        assert [(await fast.next(5)).token for _ in committed] == [c.token for c in committed]
        with pytest.raises(SubscriberLagged):
            await slow.next(1)


async def test_an_unknown_token_cannot_be_resumed() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed)) as hub:
        with pytest.raises(SubscriberLagged):
            await hub.open_subscription(after="garbage").next(1)


class Reads:
    def __init__(self) -> None:
        self.calls = 0

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        self.calls += 1
        if key.model_id == "missing":
            return None
        return ModelDetails.model_validate(model_document(key.namespace_id, key.model_id))

    async def namespace_models(self, namespace_id: str, limit: int) -> list[ModelDetails]:
        return [ModelDetails.model_validate(model_document(namespace_id, "m"))]


async def test_a_lagging_watcher_gets_reset_and_a_fresh_snapshot() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed, buffer_size=2)) as hub:
        reads = Reads()
        stream = await WatchService(hub, reads, heartbeat_s=5).open("ns", "m", None)
        snapshot = await anext(stream)
        assert snapshot.event == "snapshot"
        for i in range(5):
            feed.commit(name=f"v{i}")
        await settle()
        reset = await anext(stream)
        assert reset.event == "reset"
        fresh = await anext(stream)
        assert fresh.event == "snapshot" and reads.calls == 2
        assert fresh.id == feed.changes[-1].token  # resumable from the position it was read at
        change = feed.commit(name="after")
        message = await anext(stream)
        assert (message.event, message.id) == ("change", change.token)
        assert json.loads(message.data)["model"]["name"] == "after"
        await stream.aclose()


async def test_heartbeats_when_idle_and_only_the_watched_model() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed)) as hub:
        stream = await WatchService(hub, Reads(), heartbeat_s=0.05).open("ns", "m", None)
        await anext(stream)
        feed.commit(model_id="other")
        feed.commit(namespace_id="ns2", model_id="m")
        heartbeat = await anext(stream)
        assert heartbeat.comment == "heartbeat" and heartbeat.event is None
        await stream.aclose()


async def test_resuming_from_a_bad_last_event_id_starts_over_with_a_snapshot() -> None:
    feed = FakeFeed()
    async with running(ChangeHub(feed)) as hub:
        stream = await WatchService(hub, Reads(), heartbeat_s=5).open("ns", "m", "not-a-token")
        assert (await anext(stream)).event == "reset"
        assert (await anext(stream)).event == "snapshot"
        await stream.aclose()


async def test_watching_a_missing_model_is_refused_before_streaming() -> None:
    from modelreg.services.api.domain_errors import ModelNotFound

    feed = FakeFeed()
    async with running(ChangeHub(feed)) as hub:
        with pytest.raises(ModelNotFound):
            await WatchService(hub, Reads(), heartbeat_s=5).open("ns", "missing", None)
        assert hub.subscriber_count == 0
