"""Live watch over SSE against a real API process: snapshot, changes with what happened, resume, 404s."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from modelreg.services.testing.infra import Infra
from modelreg.services.worker.applier import EventApplier
from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import EventType
from modelreg.shared.settings import Settings
from tests.api_process import ApiProcess, running_api
from tests.conftest import make_settings
from tests.factories import event, seed_model_document
from tests.sse import Watch, watch


@pytest.fixture(scope="module")
async def served(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiProcess]:
    """One API process for the module's tests (each test works in namespaces of its own), and its database."""
    logs = tmp_path_factory.mktemp("watch")
    settings = make_settings(infra, archive_root=str(logs / "archives"), watch_heartbeat_s=0.5)
    async with running_api(settings, logs) as process:
        yield process
    client = await mongo.connect(settings)
    await client.drop_database(settings.mongodb_database)
    await client.close()


@pytest.fixture
def settings(served: ApiProcess) -> Settings:
    return served.settings


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Any]:
    """The API process's database, kept between tests (dropping it would drop what the running API set up
    in it, such as the change stream's pre-images)."""
    client = await mongo.connect(settings)
    yield client[settings.mongodb_database]
    await client.close()


@pytest.fixture
def namespaces() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"ns_a{suffix}", f"ns_b{suffix}"


@pytest.fixture
def api(served: ApiProcess) -> tuple[str, Settings]:
    return served.url, served.settings


async def apply(*events) -> None:
    outcome = await EventApplier(ModelStore()).apply(list(events))
    assert outcome is not None


async def test_model_watch_sends_snapshot_then_changes_with_what_happened(
    api, db, make_key, namespaces
) -> None:
    ns_a, ns_b = namespaces
    base_url, _ = api
    key = await make_key(ns_a)
    await db.custom_models.insert_one(seed_model_document(ns_a, "m1"))
    async with watch(base_url, f"/v1/namespaces/{ns_a}/models/m1/watch", key) as stream:
        assert isinstance(stream, Watch)
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        snapshot = await stream.next_event()
        assert snapshot.event == "snapshot"
        assert snapshot.json()["model"]["model_id"] == "m1"
        assert snapshot.json()["model"]["deployment_status"] == "not_deployed"

        await apply(event(EventType.STARTED, 10, ns_a, "m1", message="fetching"))
        await apply(event(EventType.READY, 11, ns_a, "m1"))
        pending, ready = await stream.events_until(2)
        assert pending.event == ready.event == "change"
        assert pending.id and ready.id and pending.id != ready.id
        assert pending.json()["change"] | {"committed_at": None} == {
            "type": "deployment.changed",
            "namespace_id": ns_a,
            "model_id": "m1",
            "committed_at": None,
            "event_type": "deployment.started",
            "sequence": 10,
            "message": "fetching",
            "endpoint": None,
            "deployment_status": "pending",
            "requested_by": None,
        }
        change = ready.json()
        assert change["change"]["event_type"] == "deployment.ready"
        assert change["change"]["sequence"] == 11
        assert change["change"]["endpoint"] == f"http://127.0.0.1:8001/{ns_a}/m1"
        assert change["model"]["deployed"] is True
        assert change["model"]["deployment_status"] == "deployed"


async def test_heartbeat_comments_keep_an_idle_stream_alive(api, db, make_key, namespaces) -> None:
    ns_a, ns_b = namespaces
    base_url, _ = api
    key = await make_key(ns_a)
    await db.custom_models.insert_one(seed_model_document(ns_a, "m1"))
    async with watch(base_url, f"/v1/namespaces/{ns_a}/models/m1/watch", key) as stream:
        assert isinstance(stream, Watch)
        assert (await stream.next_event()).event == "snapshot"
        heartbeat = await stream.next_event(heartbeats=True)
        assert heartbeat.event is None and heartbeat.comments == ["heartbeat"]


async def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(
    api, db, make_key, namespaces
) -> None:
    ns_a, ns_b = namespaces
    base_url, _ = api
    key = await make_key(ns_a)
    await db.custom_models.insert_one(seed_model_document(ns_a, "m1"))
    async with watch(base_url, f"/v1/namespaces/{ns_a}/models/m1/watch", key) as stream:
        assert isinstance(stream, Watch)
        await stream.next_event()
        await apply(event(EventType.STARTED, 1, ns_a, "m1"))
        first = await stream.next_event()
    # Disconnected: three more changes happen meanwhile (one of another model, not watched).
    await db.custom_models.insert_one(seed_model_document(ns_a, "other"))
    await apply(event(EventType.READY, 2, ns_a, "m1"))
    await apply(event(EventType.STARTED, 3, ns_a, "other"))
    await apply(event(EventType.FAILED, 4, ns_a, "m1", message="boom"))
    async with watch(
        base_url, f"/v1/namespaces/{ns_a}/models/m1/watch", key, last_event_id=first.id
    ) as stream:
        assert isinstance(stream, Watch)
        missed = await stream.events_until(2)
        assert [e.event for e in missed] == ["change", "change"]
        assert [e.json()["change"]["sequence"] for e in missed] == [2, 4]
        await apply(event(EventType.READY, 5, ns_a, "m1"))
        live = await stream.next_event()
        assert live.json()["change"]["sequence"] == 5


async def test_namespace_watch_sees_models_created_requested_and_deleted(
    api, db, make_key, namespaces
) -> None:
    ns_a, ns_b = namespaces
    base_url, _ = api
    key = await make_key(ns_a)
    await db.custom_models.insert_one(seed_model_document(ns_a, "m1"))
    await db.custom_models.insert_one(seed_model_document(ns_b, "hidden"))
    async with watch(base_url, f"/v1/namespaces/{ns_a}/watch", key) as stream:
        assert isinstance(stream, Watch)
        snapshot = (await stream.next_event()).json()
        assert [m["model_id"] for m in snapshot["models"]] == ["m1"]
        await db.custom_models.insert_one(seed_model_document(ns_b, "hidden2"))
        await db.custom_models.insert_one(seed_model_document(ns_a, "m2"))
        await db.custom_models.update_one(
            {"namespace_id": ns_a, "model_id": "m2"},
            {"$set": {"desired_state": "deployed", "desired_at": snapshot_time()}},
        )
        await db.custom_models.delete_one({"namespace_id": ns_a, "model_id": "m1"})
        created, requested, deleted = await stream.events_until(3)
        assert (created.json()["change"]["type"], created.json()["model"]["model_id"]) == (
            "model.created",
            "m2",
        )
        assert requested.json()["change"]["type"] == "deploy.requested"
        assert requested.json()["model"]["deployment_status"] == "pending"
        assert deleted.json()["change"]["type"] == "model.deleted"
        assert deleted.json()["change"]["model_id"] == "m1"
        assert deleted.json()["model"] is None


def snapshot_time():
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_watch_follows_the_read_rules_for_keys_and_namespaces(api, db, make_key, namespaces) -> None:
    ns_a, ns_b = namespaces
    base_url, _ = api
    key = await make_key(ns_a)
    await db.custom_models.insert_one(seed_model_document(ns_b, "m1"))
    async with watch(base_url, f"/v1/namespaces/{ns_b}/models/m1/watch", key) as foreign:
        assert isinstance(foreign, httpx.Response)
        assert foreign.status_code == 404
        assert foreign.json()["error"]["type"] == "NotFoundError"
    async with watch(base_url, f"/v1/namespaces/{ns_b}/watch", key) as foreign_namespace:
        assert isinstance(foreign_namespace, httpx.Response) and foreign_namespace.status_code == 404
    async with watch(base_url, f"/v1/namespaces/{ns_a}/models/nope/watch", key) as missing:
        assert isinstance(missing, httpx.Response) and missing.status_code == 404
        assert missing.json()["success"] is False
    async with watch(base_url, f"/v1/namespaces/{ns_a}/watch", "mrk_bad") as unauthenticated:
        assert isinstance(unauthenticated, httpx.Response) and unauthenticated.status_code == 401


@asynccontextmanager
async def watched_model(
    base_url: str, db: Any, make_key: Any, namespace: str
) -> AsyncIterator[tuple[Watch, httpx.AsyncClient, str]]:
    """Model m1 seeded in `namespace`, its watch past the snapshot, and an API client with a key of the
    namespace (and that key's prefix)."""
    key = await make_key(namespace)
    await db.custom_models.insert_one(seed_model_document(namespace, "m1"))
    async with watch(base_url, f"/v1/namespaces/{namespace}/models/m1/watch", key) as stream:
        assert isinstance(stream, Watch)
        assert (await stream.next_event()).event == "snapshot"
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            yield stream, client, key.split("_")[1]


async def test_the_change_feed_names_the_same_requester_as_the_history(api, db, make_key, namespaces) -> None:
    ns_a, _ = namespaces
    async with watched_model(api[0], db, make_key, ns_a) as (stream, client, prefix):
        deployed = await client.post(f"/v1/namespaces/{ns_a}/models/m1/deploy")
        assert deployed.status_code in (200, 202), deployed.text
        requested = await stream.next_event()
        await apply(event(EventType.STARTED, 1, ns_a, "m1"))
        started = await stream.next_event()
        history = (await client.get(f"/v1/namespaces/{ns_a}/models/m1/events")).json()["events"]

    assert requested.json()["change"]["type"] == "deploy.requested"
    assert requested.json()["change"]["requested_by"] == prefix
    assert started.json()["change"]["type"] == "deployment.changed"
    assert started.json()["change"]["requested_by"] == prefix
    assert [(e["event_type"], e["requested_by"]) for e in history] == [("deployment.started", prefix)]


async def test_a_request_repeating_the_stored_wish_is_still_reported_as_a_request(
    api, db, make_key, namespaces
) -> None:
    """A deploy sent again while pending (or an undeploy while deleting) stores the same desired_state, so
    the write changes only desired_at: the change feed must still say a request was made, and by whom."""
    ns_a, _ = namespaces
    async with watched_model(api[0], db, make_key, ns_a) as (stream, client, prefix):
        for _ in range(2):
            sent = await client.post(f"/v1/namespaces/{ns_a}/models/m1/deploy")
            assert sent.json()["command_id"] is not None, sent.text
        deploys = await stream.events_until(2)
        await apply(event(EventType.READY, 1, ns_a, "m1"))
        assert (await stream.next_event()).json()["change"]["event_type"] == "deployment.ready"
        for _ in range(2):
            sent = await client.delete(f"/v1/namespaces/{ns_a}/models/m1/deploy")
            assert sent.status_code == 202, sent.text
        undeploys = await stream.events_until(2)

    assert [(e.json()["change"]["type"], e.json()["change"]["requested_by"]) for e in deploys] == [
        ("deploy.requested", prefix)
    ] * 2
    assert [(e.json()["change"]["type"], e.json()["change"]["requested_by"]) for e in undeploys] == [
        ("undeploy.requested", prefix)
    ] * 2
    assert [e.json()["change"]["deployment_status"] for e in deploys + undeploys] == ["pending"] * 2 + [
        "deleting"
    ] * 2
