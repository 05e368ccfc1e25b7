"""The API's caches through the real app and MongoDB: what this process writes it reads back at once, a
revoked key is refused, and the caches follow the real change feed of the process.

Caches are on here with TTLs far longer than any test, so a stale answer could not hide behind one.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from modelreg.services.api.app import create_app
from modelreg.shared.settings import Settings
from tests.api_support import bearer, make_archive, upload_form
from tests.conftest import eventually
from tests.factories import seed_model_document

BASE = "/v1/namespaces/ns_a/models"


def cached(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, api_auth_cache_ttl_s=3600, api_details_cache_ttl_s=3600, api_details_cache_feed_ttl_s=3600
    )


@pytest.fixture
async def client(topics, db, make_key):
    key = await make_key("ns_a")
    async with AsyncTestClient(app=create_app(cached(topics)), timeout=60) as client:
        client.headers.update(bearer(key))
        yield client


async def status_of(client) -> str:
    response = await client.get(f"{BASE}/m1")
    assert response.status_code == 200, response.text
    return response.json()["model"]["deployment_status"]


async def test_a_deploy_through_the_api_is_seen_by_the_next_get(client, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    first = await client.get(f"{BASE}/m1")
    assert first.json()["model"]["deployment_status"] == "not_deployed"

    assert (await client.post(f"{BASE}/m1/deploy")).status_code == 200

    second = await client.get(f"{BASE}/m1", headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
    assert second.json()["model"]["deployment_status"] == "pending"


async def test_a_deletion_through_the_api_is_seen_by_the_next_get(client, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    assert (await client.get(f"{BASE}/m1")).status_code == 200

    assert (await client.delete(f"{BASE}/m1")).json()["deleted"] is True

    assert (await client.get(f"{BASE}/m1")).status_code == 404


async def test_an_upload_after_a_404_is_seen_by_the_next_get(client, db) -> None:
    response = await client.post(
        BASE, data=upload_form(), files={"file": ("m.tar.gz", make_archive(), "application/gzip")}
    )
    assert response.status_code == 201, response.text
    model_id = response.json()["model_id"]

    assert (await client.get(f"{BASE}/{model_id}")).json()["model"]["name"] == "resnet"


async def test_an_unchanged_model_answers_304_from_the_cached_etag(client, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    etag = (await client.get(f"{BASE}/m1")).headers["etag"]

    again = await client.get(f"{BASE}/m1", headers={"If-None-Match": etag})

    assert again.status_code == 304 and again.headers["etag"] == etag


async def test_a_key_revoked_by_the_api_process_is_refused_at_once(topics, db, make_key) -> None:
    key = await make_key("ns_a")
    async with AsyncTestClient(app=create_app(cached(topics)), timeout=60) as client:
        assert (await client.get("/v1/whoami", headers=bearer(key))).status_code == 200

        # The API process's own key service (its event loop is the test client's portal thread).
        revoke = client.app.state.key_service.revoke
        assert await asyncio.to_thread(client.blocking_portal.call, revoke, key.split("_")[1])

        response = await client.get("/v1/whoami", headers=bearer(key))
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


async def test_the_caches_follow_the_change_feed_of_other_processes_writes(topics, db, make_key) -> None:
    key = await make_key("ns_a")
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    async with AsyncTestClient(app=create_app(cached(topics)), timeout=60) as client:
        client.headers.update(bearer(key))
        # The API follows its own change feed (the hub the watch routes stream), not a stand-in.
        hub = client.app.state.change_hub
        assert client.app.state.change_source is hub
        await eventually(lambda: asyncio.sleep(0, hub.subscriber_count > 0))
        assert (await client.get(f"{BASE}/m1")).json()["model"]["task_type"] == "classification"

        # Another process (the worker, an operator) changes the model: with TTLs of an hour, only the
        # change feed can make this API see it.
        await db.custom_models.update_one({"model_id": "m1"}, {"$set": {"task_type": "detection"}})

        async def seen() -> bool:
            response = await client.get(f"{BASE}/m1")
            return response.json()["model"]["task_type"] == "detection"

        assert await eventually(seen)

        # `modelreg keys revoke` in another process: refused once its change arrives.
        await db.api_keys.update_one({"prefix": key.split("_")[1]}, {"$set": {"revoked": True}})

        async def refused() -> bool:
            return (await client.get("/v1/whoami")).status_code == 401

        assert await eventually(refused)


async def test_an_alias_moved_by_another_process_shows_in_the_models_details(topics, db, make_key) -> None:
    key = await make_key("ns_a")
    for model_id in ("m1", "m2"):
        await db.custom_models.insert_one(
            seed_model_document("ns_a", model_id, name="resnet", version=model_id)
        )
    async with AsyncTestClient(app=create_app(cached(topics)), timeout=60) as client:
        client.headers.update(bearer(key))
        hub = client.app.state.change_hub
        await eventually(lambda: asyncio.sleep(0, hub.subscriber_count > 0))

        async def aliases_of(model_id: str) -> list[str]:
            response = await client.get(f"{BASE}/{model_id}")
            assert response.status_code == 200, response.text
            return response.json()["model"]["aliases"]

        assert await aliases_of("m1") == [] and await aliases_of("m2") == []  # both cached now
        # Another API process points `prod` at m1, then moves it to m2: every model view must follow,
        # the one it left and the one it joined, though only the alias collection changed.
        await db.model_aliases.insert_one(
            {"namespace_id": "ns_a", "name": "resnet", "alias": "prod", "model_id": "m1", "revision": 1}
        )
        assert await eventually(lambda: _equals(aliases_of("m1"), ["prod"]))
        await db.model_aliases.update_one(
            {"namespace_id": "ns_a", "alias": "prod"},
            {"$set": {"model_id": "m2", "previous_model_id": "m1"}, "$inc": {"revision": 1}},
        )
        assert await eventually(lambda: _equals(aliases_of("m2"), ["prod"]))
        assert await aliases_of("m1") == []


async def test_alias_writes_through_the_api_are_seen_by_the_next_reads(client, db) -> None:
    for model_id in ("m1", "m2"):
        await db.custom_models.insert_one(
            seed_model_document("ns_a", model_id, name="resnet", version=model_id)
        )
    alias = "/v1/namespaces/ns_a/names/resnet/aliases/prod"

    async def aliases_of(model_id: str) -> list[str]:
        response = await client.get(f"{BASE}/{model_id}")
        assert response.status_code == 200, response.text
        return response.json()["model"]["aliases"]

    async def listed_by_alias() -> list[str]:
        response = await client.get(BASE, params={"filter": "alias = 'prod'"})
        assert response.status_code == 200, response.text
        return [model["model_id"] for model in response.json()["models"]]

    assert await aliases_of("m1") == [] and await listed_by_alias() == []  # the namespace's aliases cached
    assert (await client.put(alias, json={"model_id": "m1"})).status_code == 200
    assert await aliases_of("m1") == ["prod"] and await listed_by_alias() == ["m1"]
    assert (await client.put(alias, json={"model_id": "m2"})).status_code == 200
    assert await aliases_of("m1") == [] and await aliases_of("m2") == ["prod"]
    assert await listed_by_alias() == ["m2"]
    assert (await client.delete(alias)).status_code == 200
    assert await aliases_of("m2") == [] and await listed_by_alias() == []


async def _equals(value, expected) -> bool:
    return await value == expected


async def test_whoami_names_the_key_and_what_it_reaches(client) -> None:
    response = await client.get("/v1/whoami")

    assert response.status_code == 200
    body = response.json()
    assert body["namespaces"] == ["ns_a"] and body["admin"] is False
    assert client.headers["authorization"].split("_")[1] == body["key_prefix"]


async def test_whoami_needs_a_key(client) -> None:
    response = await client.get("/v1/whoami", headers={"Authorization": ""})
    assert response.status_code == 401
