"""The whole loop without Ray: API command → (a stand-in for the bridge) → events → real worker → API reads.

Covers the deployment history route, and the details ETag following the state the worker writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from modelreg.shared.contracts import COMMAND_DECODER, CommandType, DeploymentEvent, encode
from modelreg.shared.settings import Settings
from tests.api_support import api_client, upload
from tests.conftest import eventually, read_topic
from tests.factories import event
from tests.integration.test_api_models import seed_validator

BASE = "/v1/namespaces/ns_a/models"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # 1 s group sessions: each of the worker's two consumer-group joins waits about half a session on the
    # test Kafka. An evicted worker gets its batch again; applying an event twice changes nothing.
    return msgspec.structs.replace(settings, worker_session_timeout_ms=1000, worker_heartbeat_interval_ms=200)


@pytest.fixture
def worker(topics, db, tmp_path):
    """`modelreg worker` as its own process, as in production (Beanie binds one client per process)."""
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelreg.services.cli", "worker"],
        env={**os.environ, **topics.as_env()},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    log.close()


@pytest.fixture
async def client(topics, db, make_key, worker):
    async with api_client(topics, await make_key("ns_a")) as client:
        yield client


async def publish(producer, settings, *events: DeploymentEvent) -> None:
    for evt in events:
        await producer.send_and_wait(settings.events_topic, value=encode(evt), key=evt.key.kafka_key())


def bridge_event(event_type: str, sequence: int, model_id: str, **fields) -> DeploymentEvent:
    """An event as the bridge sends it: now, for the model of the command it acted on."""
    occurred = datetime.now(UTC) + timedelta(milliseconds=sequence)
    return event(event_type, sequence, namespace_id="ns_a", model_id=model_id, occurred_at=occurred, **fields)


async def history(client, model_id: str, **params) -> dict:
    response = await client.get(f"{BASE}/{model_id}/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_deploy_round_trip_shows_state_and_history_newest_first(client, db, producer, topics) -> None:
    model_id = (await upload(client, "ns_a")).json()["model_id"]
    empty = await history(client, model_id)
    assert empty == {
        "success": True,
        "model_id": model_id,
        "events": [],
        "total": 0,
        "limit": 20,
        "offset": 0,
        "next_offset": None,
    }

    deploy = await client.post(f"{BASE}/{model_id}/deploy")
    assert deploy.status_code == 200 and deploy.json()["deployment_status"] == "pending"
    (record,) = await read_topic(topics, topics.commands_topic, expected=1)
    command = COMMAND_DECODER.decode(record.value)
    assert command.command_type is CommandType.DEPLOY and command.model_id == model_id
    started = bridge_event("deployment.started", 1, model_id, ray_deployment_name=f"ns_a--{model_id}")
    ready = bridge_event("deployment.ready", 2, model_id, endpoint=f"http://127.0.0.1:8001/ns_a/{model_id}")
    await publish(producer, topics, started, ready)

    async def deployed() -> dict:
        model = (await client.get(f"{BASE}/{model_id}")).json()["model"]
        assert model["deployment_status"] == "deployed", model["deployment_status"]
        return model

    model = await eventually(deployed)
    assert model["deployed"] is True and model["deployment_info"]["endpoint"] == ready.endpoint
    body = await history(client, model_id)
    assert body["total"] == 2 and body["next_offset"] is None
    assert [e["event_type"] for e in body["events"]] == ["deployment.ready", "deployment.started"]
    newest = body["events"][0]
    assert newest["event_id"] == str(ready.event_id) and newest["sequence"] == 2
    assert newest["endpoint"] == ready.endpoint
    assert datetime.fromisoformat(newest["occurred_at"]) == ready.occurred_at.replace(
        microsecond=ready.occurred_at.microsecond // 1000 * 1000
    )
    assert datetime.fromisoformat(newest["applied_at"]).tzinfo is not None
    assert body["events"][1]["ray_deployment_name"] == f"ns_a--{model_id}"

    # Undeploy: the answer and the details agree until the worker observes the deletion.
    undeploy = await client.delete(f"{BASE}/{model_id}/deploy")
    assert undeploy.status_code == 202 and undeploy.json()["deployment_status"] == "deleting"
    assert (await client.get(f"{BASE}/{model_id}")).json()["model"]["deployment_status"] == "deleting"
    await publish(
        producer,
        topics,
        bridge_event("deployment.deleting", 3, model_id),
        bridge_event("deployment.deleted", 4, model_id),
    )

    async def gone() -> bool:
        return (await history(client, model_id))["total"] == 4

    await eventually(gone)
    assert (await client.get(f"{BASE}/{model_id}")).json()["model"]["deployment_status"] == "not_deployed"


async def test_history_pages_and_ignores_events_the_guard_rejects(client, db, producer, topics) -> None:
    model_id = (await upload(client, "ns_a")).json()["model_id"]
    kinds = ["deployment.started", "deployment.ready", "deployment.unhealthy"]
    events = [bridge_event(kinds[i % 3], i + 1, model_id) for i in range(25)]
    await publish(producer, topics, *events)
    await eventually(lambda: _total_is(client, model_id, 25))

    first = await history(client, model_id, limit=10)
    last = await history(client, model_id, limit=10, offset=20)
    assert [e["sequence"] for e in first["events"]] == list(range(25, 15, -1))
    assert first["next_offset"] == 10 and first["total"] == 25
    assert [e["sequence"] for e in last["events"]] == [5, 4, 3, 2, 1] and last["next_offset"] is None
    assert (await history(client, model_id, offset=30))["events"] == []

    # A duplicate and an older event change nothing: no history entry without a state change.
    await publish(producer, topics, events[-1], bridge_event("deployment.failed", 3, model_id))
    await publish(producer, topics, bridge_event("deployment.deleting", 26, model_id))
    await eventually(lambda: _total_is(client, model_id, 26))
    body = await history(client, model_id, limit=2)
    assert [e["sequence"] for e in body["events"]] == [26, 25]
    assert (await client.get(f"{BASE}/{model_id}")).json()["model"]["deployment_status"] == "deleting"


async def _total_is(client, model_id: str, total: int) -> bool:
    body = await history(client, model_id, limit=1)
    assert body["total"] == total, body["total"]
    return True


async def test_history_of_an_unknown_model_is_404_and_bad_paging_is_422(client, db) -> None:
    missing = await client.get(f"{BASE}/nope/events")
    assert missing.status_code == 404
    seed_validator("ErrorResponse").validate(missing.json())
    bad = await client.get(f"{BASE}/nope/events", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_details_etag_follows_the_stored_state(client, db, producer, topics) -> None:
    model_id = (await upload(client, "ns_a")).json()["model_id"]
    path = f"{BASE}/{model_id}"
    first = await client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert (await client.get(path)).headers["etag"] == etag  # the same state gives the same tag

    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await client.get(path, headers={"If-None-Match": if_none_match})
        assert cached.status_code == 304, if_none_match
        assert cached.content == b"" and cached.headers["etag"] == etag
    stale = await client.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.json() == first.json()

    await publish(producer, topics, bridge_event("deployment.failed", 1, model_id, message="no replicas"))

    async def changed() -> str:
        response = await client.get(path, headers={"If-None-Match": etag})
        assert response.status_code == 200
        return response.headers["etag"]

    new_etag = await eventually(changed)
    assert new_etag != etag
    assert (await client.get(path)).json()["model"]["deployment_message"] == "no replicas"
