"""Aliases through the real app and MongoDB: set, move, roll back, remove, the delete guard, the views."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import msgspec
import pytest

from tests.api_support import SharedApi, api_client, api_process, bearer, shared_api
from tests.conftest import insert_api_key
from tests.factories import seed_model_document
from tests.integration.test_api_deployments import deployed_fields

MODELS = "/v1/namespaces/ns_a/models"
ALIASES = "/v1/namespaces/ns_a/names/resnet/aliases"


@pytest.fixture
async def key(make_key) -> str:
    """A key for ns_a in the test's own database, for the tests that start an app of their own."""
    return await make_key("ns_a")


def seed_models(namespace: str) -> list[dict]:
    # Two versions of "resnet" (v1 deployed, v2 not) and a model of another name.
    return [
        seed_model_document(namespace, "v1", name="resnet", version="1", **deployed_fields()),
        seed_model_document(namespace, "v2", name="resnet", version="2"),
        seed_model_document(namespace, "other", name="bert", version="1"),
    ]


@dataclass
class Space:
    """A test's own namespace, seeded with seed_models, and a key for it alone, in the module's shared
    app and database: no other test sees its models, aliases, events or audit entries."""

    api: SharedApi
    namespace: str
    key: str

    @property
    def client(self):
        return self.api.app_client

    @property
    def models(self) -> str:
        return f"/v1/namespaces/{self.namespace}/models"

    @property
    def aliases(self) -> str:
        return f"/v1/namespaces/{self.namespace}/names/resnet/aliases"


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app and database for the module; each test works in a namespace of its own (`space`)."""
    async with shared_api(infra, tmp_path_factory.mktemp("aliases"), authenticated=False) as api:
        yield api


@pytest.fixture
async def space(shared: SharedApi) -> AsyncIterator[Space]:
    async with shared.own_namespace() as (namespace, key):
        await shared.db.custom_models.insert_many(seed_models(namespace))
        yield Space(shared, namespace, key)


async def put_alias(client, alias: str, model_id: str, aliases: str = ALIASES, **params) -> dict:
    response = await client.put(f"{aliases}/{alias}", json={"model_id": model_id}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == status
    return body["error"]["code"]


async def aliases_in_views(space: Space) -> dict[str, list[str]]:
    client, models = space.client, space.models
    listed = (await client.get(models)).json()["models"]
    details = {m["model_id"]: (await client.get(f"{models}/{m['model_id']}")).json()["model"] for m in listed}
    assert {m["model_id"]: m["aliases"] for m in listed} == {k: v["aliases"] for k, v in details.items()}
    return {m["model_id"]: m["aliases"] for m in listed}


async def test_set_move_and_roll_back_in_one_call(space) -> None:
    client, key = space.client, space.key
    created = await put_alias(client, "production", "v1", space.aliases)
    assert created["success"] is True
    alias = created["alias"]
    assert set(alias) == {"name", "alias", "model_id", "previous_model_id", "updated_at", "updated_by"}
    assert (alias["name"], alias["alias"], alias["model_id"], alias["previous_model_id"]) == (
        "resnet",
        "production",
        "v1",
        None,
    )
    assert alias["updated_by"] == key.split("_")[1]  # the key's clear prefix
    assert alias["updated_at"].endswith(("Z", "+00:00"))

    moved = (await put_alias(client, "production", "v2", space.aliases))["alias"]
    assert (moved["model_id"], moved["previous_model_id"]) == ("v2", "v1")
    assert await aliases_in_views(space) == {"v1": [], "v2": ["production"], "other": []}

    rolled = await client.post(f"{space.aliases}/production/rollback")
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["alias"]["model_id"], rolled.json()["alias"]["previous_model_id"]) == ("v1", "v2")
    assert await aliases_in_views(space) == {"v1": ["production"], "v2": [], "other": []}

    # Moving to the target it already has changes nothing but who and when.
    same = (await put_alias(client, "production", "v1", space.aliases))["alias"]
    assert (same["model_id"], same["previous_model_id"]) == ("v1", "v2")


async def test_get_alias_shows_the_target_details_and_list_shows_all(space) -> None:
    client = space.client
    await put_alias(client, "production", "v1", space.aliases)
    await put_alias(client, "staging", "v2", space.aliases)
    await put_alias(client, "canary", "v1", space.aliases)

    got = await client.get(f"{space.aliases}/production")
    assert got.status_code == 200
    body = got.json()
    assert body["alias"]["model_id"] == "v1"
    assert body["model"]["model_id"] == "v1" and body["model"]["aliases"] == ["canary", "production"]
    assert body["model"]["deployed"] is True

    listed = (await client.get(space.aliases)).json()
    assert listed["namespace_id"] == space.namespace and listed["name"] == "resnet"
    assert [(a["alias"], a["model_id"]) for a in listed["aliases"]] == [
        ("canary", "v1"),
        ("production", "v1"),
        ("staging", "v2"),
    ]
    assert (await client.get(f"/v1/namespaces/{space.namespace}/names/bert/aliases")).json()["aliases"] == []


async def test_refusals_answer_in_the_seed_shape(space) -> None:
    client = space.client
    # The model must have the alias's name.
    assert error_code(await client.put(f"{space.aliases}/prod", json={"model_id": "other"}), 409) == (
        "model_name_mismatch"
    )
    assert (await client.put(f"{space.aliases}/prod", json={"model_id": "missing"})).status_code == 404
    # require_deployed refuses a target that is not deployed, and accepts one that is.
    refused = await client.put(
        f"{space.aliases}/prod", json={"model_id": "v2"}, params={"require_deployed": "true"}
    )
    assert error_code(refused, 409) == "alias_target_not_deployed"
    assert refused.json()["error"]["details"] == {"model_id": "v2", "deployment_status": "not_deployed"}
    await put_alias(client, "prod", "v1", space.aliases, require_deployed="true")
    # Nothing to roll back to yet.
    assert error_code(await client.post(f"{space.aliases}/prod/rollback"), 409) == "alias_has_no_previous"
    # Unknown aliases.
    assert error_code(await client.get(f"{space.aliases}/nope"), 404) == "alias_not_found"
    assert error_code(await client.delete(f"{space.aliases}/nope"), 404) == "alias_not_found"
    assert error_code(await client.post(f"{space.aliases}/nope/rollback"), 404) == "alias_not_found"
    # Bad bodies and alias names: 422 in the seed's HTTPValidationError.
    for body in ({}, {"model_id": 3}, {"model_id": "v1", "extra": 1}, {"model_id": "bad id"}):
        response = await client.put(f"{space.aliases}/prod", json=body)
        assert response.status_code == 422, (body, response.text)
        assert "detail" in response.json()
    bad_alias = await client.put(f"{space.aliases}/.hidden", json={"model_id": "v1"})
    assert bad_alias.status_code == 422
    assert (await client.get(f"{space.aliases}/prod")).json()["alias"]["model_id"] == "v1"  # nothing changed


async def test_remove_an_alias(space) -> None:
    client = space.client
    await put_alias(client, "production", "v1", space.aliases)
    removed = await client.delete(f"{space.aliases}/production")
    assert removed.status_code == 200
    assert removed.json() == {
        "success": True,
        "name": "resnet",
        "alias": "production",
        "model_id": "v1",
        "deleted": True,
    }
    assert (await client.get(f"{space.aliases}/production")).status_code == 404
    assert (await aliases_in_views(space))["v1"] == []


@pytest.mark.parametrize("name", ["org/bert-base", "50%2F/100%"])
async def test_a_name_holding_slashes_is_one_segment_sent_encoded(space, name) -> None:
    client, db = space.client, space.api.db
    await db.custom_models.insert_many(
        [
            seed_model_document(space.namespace, "hf1", name=name, version="1", **deployed_fields()),
            seed_model_document(space.namespace, "hf2", name=name, version="2"),
            seed_model_document(space.namespace, "tail", name=name.rsplit("/", 1)[-1], version="1"),
        ]
    )
    aliases = f"/v1/namespaces/{space.namespace}/names/{quote(name, safe='')}/aliases"
    assert (await put_alias(client, "prod", "hf1", aliases))["alias"]["name"] == name
    moved = (await put_alias(client, "prod", "hf2", aliases))["alias"]
    assert (moved["name"], moved["model_id"], moved["previous_model_id"]) == (name, "hf2", "hf1")
    got = await client.get(f"{aliases}/prod")
    assert got.status_code == 200 and got.json()["model"]["model_id"] == "hf2"
    listed = (await client.get(aliases)).json()
    assert listed["name"] == name and [a["alias"] for a in listed["aliases"]] == ["prod"]
    rolled = await client.post(f"{aliases}/prod/rollback")
    assert rolled.status_code == 200 and rolled.json()["alias"]["model_id"] == "hf1"
    # The last part of the name alone is another name: its aliases are its own.
    tail_aliases = f"/v1/namespaces/{space.namespace}/names/{quote(name.rsplit('/', 1)[-1], safe='')}/aliases"
    assert (await client.get(tail_aliases)).json()["aliases"] == []
    assert (await client.put(f"{tail_aliases}/prod", json={"model_id": "hf1"})).status_code == 409
    removed = await client.delete(f"{aliases}/prod")
    assert removed.status_code == 200 and removed.json()["name"] == name
    assert (await client.get(f"{aliases}/prod")).status_code == 404


async def test_deleting_an_aliased_model_needs_force_and_takes_its_aliases(space) -> None:
    client = space.client
    await put_alias(client, "production", "v1", space.aliases)
    await put_alias(client, "staging", "v2", space.aliases)
    await put_alias(client, "staging", "v1", space.aliases)  # staging: v1, previous v2
    await put_alias(client, "canary", "v1", space.aliases)
    await put_alias(client, "canary", "v2", space.aliases)  # canary: v2, previous v1

    refused = await client.delete(f"{space.models}/v1")
    assert error_code(refused, 409) == "model_has_aliases"
    assert refused.json()["error"]["details"]["aliases"] == ["production", "staging"]
    assert (await client.get(f"{space.models}/v1")).status_code == 200  # nothing stored was lost

    forced = await client.delete(f"{space.models}/v1", params={"force": "true"})
    assert forced.status_code == 200 and forced.json()["deleted"] is True
    assert (await client.get(f"{space.aliases}/production")).status_code == 404
    assert (await client.get(f"{space.aliases}/staging")).status_code == 404
    canary = (await client.get(f"{space.aliases}/canary")).json()["alias"]
    assert (canary["model_id"], canary["previous_model_id"]) == ("v2", None)  # no rollback to a deleted model
    # A model without aliases deletes as before.
    assert (await client.delete(f"{space.models}/other")).status_code == 200


async def test_concurrent_moves_are_never_lost(space, shared, tmp_path) -> None:
    client, key = space.client, space.key
    targets = [f"c{i}" for i in range(8)]
    await shared.db.custom_models.insert_many(
        [seed_model_document(space.namespace, t, name="resnet", version=t) for t in targets]
    )
    await put_alias(client, "production", "v1", space.aliases)
    # Moves to eight different targets at once, through a real API process (really concurrent): each is a
    # compare-and-set retried on the newest state, so every one lands, one after the other.
    async with api_process(shared.settings, tmp_path / "api.log", key) as served:
        answers = await asyncio.gather(
            *(served.put(f"{space.aliases}/production", json={"model_id": t}) for t in targets)
        )
    assert [a.status_code for a in answers] == [200] * len(targets), [a.text for a in answers]
    previous = {a.json()["alias"]["previous_model_id"] for a in answers}
    # Each move replaced a different target: the chain v1 → c… → c… has no gap and no repeat.
    assert len(previous) == len(targets) and previous <= {"v1", *targets}
    final = (await client.get(f"{space.aliases}/production")).json()["alias"]
    assert final["model_id"] in set(targets) - previous
    for target in targets:
        events = (await client.get(f"{space.models}/{target}/events")).json()["events"]
        assert [e["event_type"] for e in events].count("alias.assigned") == 1


async def test_alias_moves_appear_in_the_models_histories(space) -> None:
    client = space.client
    await put_alias(client, "production", "v1", space.aliases)
    await put_alias(client, "production", "v2", space.aliases)
    await client.post(f"{space.aliases}/production/rollback")

    def entries(body: dict) -> list[tuple[str, str]]:
        return [(e["event_type"], e["message"]) for e in body["events"]]

    v1 = (await client.get(f"{space.models}/v1/events")).json()
    v2 = (await client.get(f"{space.models}/v2/events")).json()
    assert entries(v1) == [  # newest first
        ("alias.assigned", "alias production now points here (from v2)"),
        ("alias.unassigned", "alias production moved to v2"),
        ("alias.assigned", "alias production now points here"),
    ]
    assert entries(v2) == [
        ("alias.unassigned", "alias production moved to v1"),
        ("alias.assigned", "alias production now points here (from v1)"),
    ]
    event = v1["events"][0]
    assert set(event) >= {"event_id", "event_type", "sequence", "occurred_at", "applied_at"}


async def test_namespace_rules_apply(space, shared) -> None:
    client = space.client
    await put_alias(client, "production", "v1", space.aliases)
    other = await insert_api_key(shared.db, shared.settings, "ns_b")
    foreign = bearer(other)
    assert (await client.get(f"{space.aliases}/production", headers=foreign)).status_code == 404
    assert (await client.get(space.aliases, headers=foreign)).status_code == 404
    denied = await client.put(f"{space.aliases}/production", json={"model_id": "v2"}, headers=foreign)
    assert error_code(denied, 403) == "namespace_forbidden"
    assert (await client.post(f"{space.aliases}/production/rollback", headers=foreign)).status_code == 403
    assert (await client.get(space.aliases, headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_disabling_a_shared_model_removes_its_copys_aliases(topics, db, make_key) -> None:
    from tests.api_support import make_archive

    async with api_client(topics, await make_key(admin=True)) as admin:
        registered = await admin.post(
            "/v1/models",
            data={"name": "shared-resnet", "version": "1", "model_format": "onnx"},
            files={"file": ("model.tar.gz", make_archive(), "application/gzip")},
        )
        assert registered.status_code == 201, registered.text
        model_id = registered.json()["model_id"]
        assert (await admin.post(f"/v1/namespaces/ns_a/models/org/{model_id}/enable")).status_code == 200
        aliases = "/v1/namespaces/ns_a/names/shared-resnet/aliases"
        set_alias = await admin.put(f"{aliases}/production", json={"model_id": model_id})
        assert set_alias.status_code == 200, set_alias.text
        assert (await admin.get(f"{MODELS}/{model_id}")).json()["model"]["aliases"] == ["production"]

        disabled = await admin.post(f"/v1/namespaces/ns_a/models/org/{model_id}/disable")
        assert disabled.status_code == 200, disabled.text
        assert (await admin.get(f"{aliases}/production")).status_code == 404  # none left dangling


async def test_alias_writes_show_at_once_in_cached_details(topics, db, key) -> None:
    await db.custom_models.insert_many(
        [seed_model_document("ns_a", v, name="resnet", version=v) for v in ("v1", "v2")]
    )
    # Details cached for an hour and no change feed: only this process's own invalidation can show a move.
    settings = msgspec.structs.replace(
        topics,
        api_details_cache_ttl_s=3600,
        api_details_cache_feed_ttl_s=3600,
        api_cache_follow_changes=False,
    )
    async with api_client(settings, key) as client:

        async def aliases_of(model_id: str) -> list[str]:
            response = await client.get(f"{MODELS}/{model_id}")
            assert response.status_code == 200, response.text
            return response.json()["model"]["aliases"]

        assert await aliases_of("v1") == await aliases_of("v2") == []  # both cached now

        await put_alias(client, "production", "v1")
        assert (await aliases_of("v1"), await aliases_of("v2")) == (["production"], [])

        await put_alias(client, "production", "v2")
        assert (await aliases_of("v1"), await aliases_of("v2")) == ([], ["production"])

        assert (await client.post(f"{ALIASES}/production/rollback")).status_code == 200
        assert (await aliases_of("v1"), await aliases_of("v2")) == (["production"], [])

        assert (await client.delete(f"{ALIASES}/production")).status_code == 200
        assert (await aliases_of("v1"), await aliases_of("v2")) == ([], [])


async def test_alias_writes_are_in_the_audit_trail(space) -> None:
    client, key = space.client, space.key
    await put_alias(client, "production", "v1", space.aliases)
    await put_alias(client, "production", "v2", space.aliases)
    assert (await client.post(f"{space.aliases}/production/rollback")).status_code == 200
    assert (await client.delete(f"{space.aliases}/production")).status_code == 200
    refused = await client.put(f"{space.aliases}/production", json={"model_id": "missing"})
    assert refused.status_code == 404

    response = await client.get(f"/v1/namespaces/{space.namespace}/audit", params={"limit": 10})
    assert response.status_code == 200, response.text
    entries = [e for e in response.json()["entries"] if e["action"].startswith("alias.")]

    assert [(e["action"], e["outcome"], e["model_id"]) for e in entries] == [
        ("alias.set", "refused", "missing"),
        ("alias.remove", "done", "v1"),
        ("alias.rollback", "done", "v1"),
        ("alias.set", "done", "v2"),
        ("alias.set", "done", "v1"),
    ]
    assert all(e["target"] == {"name": "resnet", "alias": "production"} for e in entries)
    assert all(e["key_prefix"] == key.split("_")[1] for e in entries)
    assert [e["details"].get("previous_model_id") for e in entries[1:]] == ["v1", "v2", "v1", None]
