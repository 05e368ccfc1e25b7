"""The audit trail through the real app, database and broker: every write recorded with its key, request id
and outcome; the namespace's route and the organization's with their filters, pages and access rules; the
key commands' entries; CLI deploys in the history's `requested_by`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from modelreg.services.audit.recorder import Audit
from modelreg.services.keys.service import KeyService
from modelreg.shared.adapters.mongo import ApiKeyStore, AuditStore
from tests.api_support import api_client, bearer, upload
from tests.integration.test_api_upload import assert_error
from tests.integration.test_keys_cli import modelreg


def prefix_of(key: str) -> str:
    return key.split("_")[1]


@pytest.fixture
async def key(make_key) -> str:
    return await make_key("ns_a")


@pytest.fixture
async def client(topics, db, key):
    async with api_client(topics, key) as client:
        yield client


async def trail(client, namespace_id: str = "ns_a", **params) -> dict:
    response = await client.get(f"/v1/namespaces/{namespace_id}/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_write_is_recorded_with_key_request_id_and_outcome(client, key) -> None:
    client.headers["X-Request-ID"] = "req-upload"
    uploaded = await upload(client, "ns_a")
    del client.headers["X-Request-ID"]
    model_id = uploaded.json()["model_id"]
    await client.patch(
        f"/v1/namespaces/ns_a/models/{model_id}",
        json={"tags": {"stage": "prod"}},
        headers={"X-Request-ID": "req-tags"},
    )
    deployed = await client.post(f"/v1/namespaces/ns_a/models/{model_id}/deploy")
    await client.delete(f"/v1/namespaces/ns_a/models/{model_id}/deploy")
    await client.delete(f"/v1/namespaces/ns_a/models/{model_id}")

    body = await trail(client)

    entries = body["entries"]
    assert [e["action"] for e in entries] == [
        "model.delete",
        "model.undeploy",
        "model.deploy",
        "model.tags",
        "model.upload",
    ]
    assert body["total"] == 5 and body["namespace_id"] == "ns_a"
    for entry in entries:
        assert entry["model_id"] == model_id
        assert entry["key_prefix"] == prefix_of(key)
        assert entry["via"] == "api" and entry["namespaces"] == ["ns_a"]
        assert entry["outcome"] == "done" and entry["code"] is None
        assert entry["request_id"]
        assert datetime.fromisoformat(entry["at"]) <= datetime.fromisoformat(entry["settled_at"])
    by_action = {e["action"]: e for e in entries}
    assert by_action["model.upload"]["request_id"] == "req-upload"
    assert by_action["model.upload"]["target"] == {"name": "resnet", "version": "1.0.0"}
    assert by_action["model.tags"]["request_id"] == "req-tags"
    assert by_action["model.tags"]["details"] == {"tags": {"stage": "prod"}}
    assert by_action["model.deploy"]["details"]["command_id"] == deployed.json()["command_id"]
    assert by_action["model.delete"]["details"]["deleted"] is True


async def test_refused_writes_are_recorded_as_refused_with_their_code(client) -> None:
    model_id = (await upload(client, "ns_a")).json()["model_id"]
    again = await upload(client, "ns_a")  # same name and version
    assert again.status_code == 409
    missing = await client.patch("/v1/namespaces/ns_a/models/nope", json={"tags": {"k": "v"}})
    assert missing.status_code == 404

    entries = (await trail(client))["entries"]

    assert [(e["action"], e["outcome"], e["code"]) for e in entries] == [
        ("model.tags", "refused", None),
        ("model.upload", "refused", "model_version_exists"),
        ("model.upload", "done", None),
    ]
    assert entries[0]["model_id"] == "nope" and entries[2]["model_id"] == model_id


async def test_filters_by_model_action_and_time_and_pages(client) -> None:
    first = (await upload(client, "ns_a", version="1")).json()["model_id"]
    second = (await upload(client, "ns_a", version="2")).json()["model_id"]
    for i in range(3):
        await client.patch(f"/v1/namespaces/ns_a/models/{first}", json={"tags": {"n": str(i)}})

    assert (await trail(client, model_id=second))["total"] == 1
    assert (await trail(client, model_id=first))["total"] == 4
    assert (await trail(client, action="model.upload"))["total"] == 2
    assert (await trail(client, model_id=first, action="model.tags"))["total"] == 3
    everything = (await trail(client))["entries"]
    assert (await trail(client, until=everything[-1]["at"]))["total"] == 0
    assert (await trail(client, since=everything[-1]["at"]))["total"] == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await trail(client, since=future))["total"] == 0

    page1 = await trail(client, limit=2)
    page3 = await trail(client, limit=2, offset=4)
    assert page1["next_offset"] == 2 and page3["next_offset"] is None
    assert [e["entry_id"] for e in page1["entries"]] == [e["entry_id"] for e in everything[:2]]
    assert [e["entry_id"] for e in page3["entries"]] == [everything[4]["entry_id"]]


async def test_only_the_namespace_keys_and_admins_read_it(client, make_key) -> None:
    await upload(client, "ns_a")
    other = await make_key("ns_b")
    admin = await make_key(admin=True)

    foreign = await client.get("/v1/namespaces/ns_a/audit", headers=bearer(other))
    as_admin = await client.get("/v1/namespaces/ns_a/audit", headers=bearer(admin))
    anonymous = await client.get("/v1/namespaces/ns_a/audit", headers={"Authorization": ""})

    assert_error(foreign, 404, "NotFoundError", None)
    assert as_admin.status_code == 200 and as_admin.json()["total"] == 1
    assert anonymous.status_code == 401
    bad = await client.get("/v1/namespaces/ns_a/audit", params={"action": "model.explode"})
    assert bad.status_code == 422


async def test_key_commands_are_recorded_in_their_namespaces(topics, db, key) -> None:
    # Before any app runs: Beanie is bound to the test's own client (tests/conftest.py, db).
    keys = KeyService(ApiKeyStore(), topics.api_key_pepper, Audit(AuditStore()))
    created, record = await keys.create(["ns_a", "ns_c"])
    await keys.revoke(record.prefix)

    async with api_client(topics, key) as client:
        entries = (await trail(client))["entries"]

    assert [(e["action"], e["via"], e["outcome"]) for e in entries] == [
        ("key.revoke", "cli", "done"),
        ("key.create", "cli", "done"),
    ]
    assert all(e["target"]["key_prefix"] == record.prefix for e in entries)
    assert entries[0]["details"] == {"revoked": True}
    assert entries[1]["namespaces"] == ["ns_a", "ns_c"] and entries[1]["key_prefix"] is None
    assert created not in str(entries)  # the key itself is never recorded


def history_entry(event_type: str, sequence: int) -> dict:
    now = datetime.now(UTC)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "sequence": sequence,
        "occurred_at": now,
        "applied_at": now,
    }


async def test_history_entries_caused_by_a_request_show_its_key(client, db, key, make_key) -> None:
    other = await make_key("ns_a")
    model_id = (await upload(client, "ns_a")).json()["model_id"]
    before = history_entry("deployment.ready", 1)  # applied before any request
    await db.custom_models.update_one({"model_id": model_id}, {"$push": {"deployment_history": before}})
    await client.post(f"/v1/namespaces/ns_a/models/{model_id}/deploy")
    # What the worker would write: the deployment's events, then a health change nobody asked for.
    for entry in (
        history_entry("deployment.started", 2),
        history_entry("deployment.ready", 3),
        history_entry("deployment.unhealthy", 4),
    ):
        await db.custom_models.update_one(
            {"model_id": model_id},
            {
                "$push": {"deployment_history": entry},
                "$set": {"deployed": True, "deployment_status": "unhealthy"},
            },
        )
    undeploy = await client.delete(f"/v1/namespaces/ns_a/models/{model_id}/deploy", headers=bearer(other))
    assert undeploy.status_code == 202, undeploy.text
    await db.custom_models.update_one(
        {"model_id": model_id}, {"$push": {"deployment_history": history_entry("deployment.deleting", 5)}}
    )

    events = (await client.get(f"/v1/namespaces/ns_a/models/{model_id}/events")).json()["events"]

    assert [(e["event_type"], e["requested_by"]) for e in events] == [
        ("deployment.deleting", prefix_of(other)),
        ("deployment.unhealthy", None),
        ("deployment.ready", prefix_of(key)),
        ("deployment.started", prefix_of(key)),
        ("deployment.ready", None),
    ]


async def test_the_organization_trail_lists_every_entry_to_admin_keys_only(topics, db, key, make_key) -> None:
    # Before any app runs: Beanie is bound to the test's own client (tests/conftest.py, db).
    keys = KeyService(ApiKeyStore(), topics.api_key_pepper, Audit(AuditStore()))
    admin, admin_record = await keys.create([], admin=True)
    _, spare = await keys.create([], admin=True)
    await keys.revoke(spare.prefix)
    other = await make_key("ns_b")

    async with api_client(topics, admin) as client:
        model_id = (await upload(client, "ns_a")).json()["model_id"]
        await upload(client, "ns_b")
        everything = await client.get("/v1/audit")
        of_ns_a = await client.get("/v1/audit", params={"namespace_id": "ns_a"})
        creates = await client.get("/v1/audit", params={"action": "key.create", "limit": 1})
        by_model = await client.get("/v1/audit", params={"model_id": model_id})
        before_uploads = await client.get(
            "/v1/audit", params={"until": everything.json()["entries"][1]["at"]}
        )
        namespace_trail = await trail(client)
        as_namespace_key = await client.get("/v1/audit", headers=bearer(key))
        as_other = await client.get("/v1/audit", headers=bearer(other), params={"namespace_id": "ns_b"})
        bad = await client.get("/v1/audit", params={"namespace_id": "a/b"})

    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert body["namespace_id"] is None and body["total"] == 5 and body["next_offset"] is None
    assert [(e["action"], e["namespaces"]) for e in body["entries"][:2]] == [
        ("model.upload", ["ns_b"]),
        ("model.upload", ["ns_a"]),
    ]
    # The admin keys' entries, of no namespace (their order within one millisecond is the entry ids').
    assert sorted((e["action"], e["target"]["key_prefix"], e["namespaces"]) for e in body["entries"][2:]) == [
        ("key.create", prefix, []) for prefix in sorted([admin_record.prefix, spare.prefix])
    ] + [("key.revoke", spare.prefix, [])]
    assert body["entries"][0]["key_prefix"] == prefix_of(admin)
    ns_a = of_ns_a.json()
    assert ns_a["namespace_id"] == "ns_a" and [e["model_id"] for e in ns_a["entries"]] == [model_id]
    assert creates.json()["total"] == 2 and creates.json()["next_offset"] == 1
    assert [e["action"] for e in creates.json()["entries"]] == ["key.create"]
    assert by_model.json()["total"] == 1
    assert before_uploads.json()["total"] == 3
    # The namespace route is unchanged: no namespace-less entry, its namespace in the body.
    assert namespace_trail["namespace_id"] == "ns_a" and namespace_trail["total"] == 1
    assert_error(as_namespace_key, 403, "ForbiddenError", "admin_required")
    assert_error(as_other, 403, "ForbiddenError", "admin_required")
    assert bad.status_code == 422


async def test_a_cli_deploy_after_an_api_deploy_is_not_attributed_to_the_api_key(
    client, db, topics, key
) -> None:
    model_id = (await upload(client, "ns_a")).json()["model_id"]
    assert (await client.post(f"/v1/namespaces/ns_a/models/{model_id}/deploy")).status_code == 200
    await db.custom_models.update_one(
        {"model_id": model_id}, {"$push": {"deployment_history": history_entry("deployment.started", 1)}}
    )
    deployed = modelreg(topics, "models", "deploy", "--namespace", "ns_a", "--model-id", model_id)
    assert deployed.returncode == 0, deployed.stderr
    # The CLI's command, applied: its events are nobody's key's.
    await db.custom_models.update_one(
        {"model_id": model_id}, {"$push": {"deployment_history": history_entry("deployment.ready", 2)}}
    )

    events = (await client.get(f"/v1/namespaces/ns_a/models/{model_id}/events")).json()["events"]
    entries = (await trail(client, action="model.deploy"))["entries"]

    assert [(e["event_type"], e["requested_by"]) for e in events] == [
        ("deployment.ready", None),
        ("deployment.started", prefix_of(key)),
    ]
    assert [(e["via"], e["key_prefix"]) for e in entries] == [("cli", None), ("api", prefix_of(key))]
    assert entries[0]["details"] == {"command_id": deployed.stdout.strip(), "sent": True}
