"""Named Ray clusters through real MongoDB- and Kafka-protocol servers: the CLI, `GET /v1/clusters`,
placement, moves with late events, cluster loss and return, failover. Health reports and events are
published here as each cluster's bridge would publish them (no Ray needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka
from modelreg.shared.contracts import (
    COMMAND_DECODER,
    ClusterHealthReport,
    ClusterResources,
    CommandType,
    DeploymentCommand,
    DeploymentEvent,
    EventType,
    ServeApplicationState,
    encode,
    now_microseconds,
)
from modelreg.shared.settings import Settings
from tests.api_support import api_client
from tests.conftest import eventually, read_topic
from tests.factories import seed_model_document
from tests.integration.test_api_models import seed_validator

NS = "ns_c"
BASE = f"/v1/namespaces/{NS}/models"
GIB = 1024**3


@pytest.fixture
def session_ms() -> int:
    """Group session length: each of the worker's two consumer-group joins waits about half of it."""
    return 1000


@pytest.fixture
async def cluster_topics(settings: Settings, session_ms: int) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    # 1 s sessions: a worker evicted under load gets its batch again, which a test tolerates unless it
    # counts records the worker wrote (those keep the project's 3 s).
    configured = msgspec.structs.replace(
        settings,
        worker_session_timeout_ms=session_ms,
        worker_heartbeat_interval_ms=min(500, session_ms // 5),
        cluster_health_topic=f"health-{suffix}",
        cluster_unreachable_after_s=3.0,
        cluster_check_interval_s=0.3,
    )
    await kafka.ensure_topics(
        configured,
        [
            configured.events_topic,
            configured.dlq_topic,
            configured.commands_topic,
            configured.cluster_health_topic,
        ],
    )
    return configured


@pytest.fixture
def worker(cluster_topics: Settings, db, tmp_path) -> Iterator[ServiceProcess]:
    """A `modelreg worker` process (an in-process one would share Beanie with the API's test client)."""
    process = ServiceProcess("worker", cluster_topics, tmp_path / "worker.log").start()
    try:
        yield process
    finally:
        process.stop()


def cluster_document(
    name: str, healthy: bool = True, cpus: float = 4, gpus: float = 0, **fields: Any
) -> dict:
    resources = msgspec.to_builtins(
        ClusterResources(
            cpu_total=cpus,
            cpu_free=cpus,
            gpu_total=gpus,
            gpu_free=gpus,
            memory_total_bytes=16 * GIB,
            memory_free_bytes=16 * GIB,
        )
    )
    return {
        "name": name,
        "ray_address": f"{name}-head:6379",
        "serve_url": f"http://{name}-serve:8000",
        "labels": {},
        "created_at": datetime.now(UTC),
        "healthy": healthy,
        "unreachable": False,
        "last_seen_at": datetime.now(UTC) if healthy else None,
        "resources": resources if healthy else None,
        "applications": [],
        **fields,
    }


def report(cluster: str, *apps: str, cpus: float = 4, serve_up: bool = True) -> ClusterHealthReport:
    return ClusterHealthReport(
        report_id=uuid.uuid4(),
        cluster=cluster,
        sequence=now_microseconds(),
        reported_at=datetime.now(UTC),
        serve_up=serve_up,
        message=None if serve_up else "the Ray cluster does not answer: connection refused",
        resources=ClusterResources(
            cpu_total=cpus, cpu_free=cpus, memory_total_bytes=16 * GIB, memory_free_bytes=16 * GIB
        ),
        applications=[ServeApplicationState(namespace_id=NS, model_id=m, status="RUNNING") for m in apps],
    )


def bridge_event(event_type: EventType, model_id: str, cluster: str, **fields: Any) -> DeploymentEvent:
    if event_type is EventType.READY:
        fields.setdefault("endpoint", f"http://{cluster}-serve:8000/{NS}/{model_id}")
        fields.setdefault("base_image", "modelreg/serve-onnx:latest")
        fields.setdefault("ray_cluster_url", f"{cluster}-head:6379")
    return DeploymentEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        namespace_id=NS,
        model_id=model_id,
        sequence=now_microseconds(),
        occurred_at=datetime.now(UTC),
        cluster=cluster,
        **fields,
    )


async def send(producer, settings: Settings, *messages: DeploymentEvent | ClusterHealthReport) -> None:
    for message in messages:
        if isinstance(message, ClusterHealthReport):
            await producer.send_and_wait(
                settings.cluster_health_topic, value=encode(message), key=message.kafka_key()
            )
        else:
            await producer.send_and_wait(
                settings.events_topic, value=encode(message), key=message.key.kafka_key()
            )


async def commands(settings: Settings, expected: int = 1) -> list[DeploymentCommand]:
    records = await read_topic(settings, settings.commands_topic, expected=expected, timeout_s=5)
    return [COMMAND_DECODER.decode(r.value) for r in sorted(records, key=lambda r: (r.partition, r.offset))]


async def model(db, model_id: str) -> dict[str, Any]:
    return await db.custom_models.find_one({"namespace_id": NS, "model_id": model_id})


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelreg.services.cli", "clusters", *args],
        env={**os.environ, **settings.as_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- registration ---------------------------------------------------------------------------------------


async def test_clusters_cli_adds_lists_and_removes_and_refuses_while_models_are_placed(settings, db) -> None:
    added = cli(
        settings,
        "add",
        "eu-gpu",
        "--ray-address",
        "ray-eu:6379",
        "--serve-url",
        "http://eu:8000",
        "--label",
        "region=eu",
        "--label",
        "pool=gpu",
    )
    assert added.returncode == 0, added.stderr
    stored = await db.ray_clusters.find_one({"name": "eu-gpu"})
    assert stored["labels"] == {"region": "eu", "pool": "gpu"} and stored["serve_url"] == "http://eu:8000"

    again = cli(settings, "add", "eu-gpu", "--ray-address", "x:1", "--serve-url", "http://x:1")
    assert again.returncode == 2 and "already registered" in again.stderr
    bad = cli(settings, "add", "Bad_Name", "--ray-address", "x:1", "--serve-url", "http://x:1")
    assert bad.returncode == 2 and "name" in bad.stderr
    bad_label = cli(
        settings, "add", "b", "--ray-address", "x:1", "--serve-url", "http://x:1", "--label", "eu"
    )
    assert bad_label.returncode == 2 and "key=value" in bad_label.stderr

    await db.custom_models.insert_one(
        seed_model_document(NS, "placed", cluster="eu-gpu", deployed=True, deployment_status="deployed")
    )
    listed = cli(settings, "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith("eu-gpu"))
    assert row.split()[1:3] == ["no", "1"] and "pool=gpu,region=eu" in row

    refused = cli(settings, "remove", "eu-gpu")
    assert refused.returncode == 1 and "1 model(s) are placed on cluster eu-gpu" in refused.stderr
    await db.custom_models.update_one(
        {"model_id": "placed"}, {"$set": {"deployed": False, "deployment_status": "not_deployed"}}
    )
    assert cli(settings, "remove", "eu-gpu").returncode == 0
    assert await db.ray_clusters.count_documents({}) == 0
    assert cli(settings, "remove", "eu-gpu").returncode == 1


async def test_get_clusters_lists_health_labels_resources_and_model_counts(topics, db, make_key) -> None:
    await db.ray_clusters.insert_many(
        [
            cluster_document("a", labels={"region": "eu"}),
            cluster_document("b", healthy=False),
            cluster_document("stale", last_seen_at=datetime(2026, 1, 1, tzinfo=UTC)),
        ]
    )
    await db.custom_models.insert_many(
        [
            seed_model_document(NS, "m1", cluster="a", deployed=True, deployment_status="deployed"),
            seed_model_document(NS, "m2", desired_cluster="a", desired_state="deployed"),
            seed_model_document(NS, "m3", cluster="a", deployment_status="not_deployed"),
        ]
    )
    async with api_client(topics, await make_key("other")) as client:
        response = await client.get("/v1/clusters")
        assert response.status_code == 200, response.text
        by_name = {c["name"]: c for c in response.json()["clusters"]}
        assert set(by_name) == {"a", "b", "stale"}
        a = by_name["a"]
        assert (a["healthy"], a["labels"], a["models"]) == (True, {"region": "eu"}, 2)
        assert a["resources"]["cpu_free"] == 4 and a["last_seen_at"].endswith("Z") or "+" in a["last_seen_at"]
        assert by_name["b"]["healthy"] is False and by_name["b"]["last_seen_at"] is None
        assert by_name["stale"]["healthy"] is False, "silent beyond the timeout"
        assert (await client.get("/v1/clusters", headers={"Authorization": "Bearer nope"})).status_code == 401


# --- placement ------------------------------------------------------------------------------------------


async def test_deploy_places_by_name_by_labels_and_by_free_capacity(topics, db, make_key) -> None:
    await db.ray_clusters.insert_many(
        [cluster_document("small", cpus=2, labels={"region": "eu"}), cluster_document("big", cpus=8)]
    )
    await db.custom_models.insert_many([seed_model_document(NS, m) for m in ("m1", "m2", "m3")])
    async with api_client(topics, await make_key(NS)) as client:
        assert (await client.post(f"{BASE}/m1/deploy", json={"cluster": "small"})).status_code == 200
        assert (await client.post(f"{BASE}/m2/deploy", json={"labels": {"region": "eu"}})).status_code == 200
        assert (await client.post(f"{BASE}/m3/deploy")).status_code == 200
    sent = {c.model_id: c for c in await commands(topics, expected=3)}
    assert {m: c.cluster for m, c in sent.items()} == {"m1": "small", "m2": "small", "m3": "big"}
    assert all(c.command_type is CommandType.DEPLOY for c in sent.values())
    assert (await model(db, "m1"))["desired_cluster"] == "small"


async def test_nothing_fits_answers_409_with_each_clusters_reason(topics, db, make_key) -> None:
    await db.ray_clusters.insert_many(
        [
            cluster_document("cpu-only", cpus=8),
            cluster_document("down", healthy=False, labels={"pool": "gpu"}),
        ]
    )
    await db.custom_models.insert_one(
        seed_model_document(
            NS, "gpu-model", resource_requirements={"num_cpus": 1, "num_gpus": 1, "memory": GIB}
        )
    )
    async with api_client(topics, await make_key(NS)) as client:
        response = await client.post(f"{BASE}/gpu-model/deploy")
        assert response.status_code == 409
        body = response.json()
        seed_validator("ErrorResponse").validate(body)
        assert body["error"]["code"] == "no_cluster_fits"
        assert body["error"]["details"]["clusters"] == {
            "cpu-only": "needs 1 free GPUs, has 0",
            "down": "unhealthy (Serve down or no recent health report)",
        }
        named = await client.post(f"{BASE}/gpu-model/deploy", json={"cluster": "nowhere"})
        assert named.json()["error"]["details"]["clusters"] == {"nowhere": "not registered"}
        bad = await client.post(f"{BASE}/gpu-model/deploy", json={"cluster": "Not A Name"})
        assert bad.status_code == 422
        assert (await model(db, "gpu-model")).get("desired_state") is None, "nothing recorded"


async def test_without_registered_clusters_deploy_goes_to_the_default_bridge(topics, db, make_key) -> None:
    await db.custom_models.insert_one(seed_model_document(NS, "m1"))
    async with api_client(topics, await make_key(NS)) as client:
        assert (await client.post(f"{BASE}/m1/deploy")).status_code == 200
    [command] = await commands(topics)
    assert command.cluster is None
    assert "desired_cluster" not in await model(db, "m1")


# --- moves, loss, failover (the worker) -------------------------------------------------------------------


async def deployed_on(producer, settings: Settings, db, model_id: str, cluster: str) -> None:
    await send(producer, settings, bridge_event(EventType.READY, model_id, cluster))
    await eventually(lambda: _on(db, model_id, cluster))


async def _on(db, model_id: str, cluster: str) -> bool:
    doc = await model(db, model_id)
    return doc.get("cluster") == cluster and doc["deployment_status"] == "deployed"


async def test_a_move_switches_once_b_is_ready_retires_a_and_ignores_as_late_events(
    cluster_topics, worker, db, producer, make_key
) -> None:
    settings = cluster_topics
    # Never seen, so never unreachable: this test is about the move alone.
    await db.ray_clusters.insert_many(
        [cluster_document("a", last_seen_at=None), cluster_document("b", last_seen_at=None)]
    )
    await db.custom_models.insert_one(
        seed_model_document(NS, "mv", desired_cluster="a", desired_state="deployed")
    )
    await deployed_on(producer, settings, db, "mv", "a")

    async with api_client(settings, await make_key(NS)) as client:
        answer = await client.post(f"{BASE}/mv/deploy", json={"cluster": "b"})
        assert answer.status_code == 200 and answer.json()["deployment_status"] == "deployed"
        [to_b] = await commands(settings)
        assert (to_b.command_type, to_b.cluster) == (CommandType.DEPLOY, "b")

        await send(producer, settings, bridge_event(EventType.STARTED, "mv", "b"))
        await eventually(lambda: _history_has(db, "mv", "deployment.started"))
        details = (await client.get(f"{BASE}/mv")).json()["model"]
        assert details["deployed"] is True and details["deployment_info"]["ray_cluster_url"] == "a-head:6379"

        await send(producer, settings, bridge_event(EventType.READY, "mv", "b"))
        await eventually(lambda: _on(db, "mv", "b"))
        retire = await eventually(lambda: _command(settings, CommandType.UNDEPLOY, "a"))
        assert retire.model_id == "mv"

        # A carries out its undeploy; its late events (even a failure) never undeploy the model.
        late = [
            bridge_event(EventType.DELETING, "mv", "a"),
            bridge_event(EventType.FAILED, "mv", "a", message="replica died while deleting"),
            bridge_event(EventType.DELETED, "mv", "a"),
        ]
        await send(producer, settings, *late)
        await eventually(lambda: _history_has(db, "mv", "deployment.deleted"))
        details = (await client.get(f"{BASE}/mv")).json()["model"]
        assert details["deployed"] is True and details["deployment_status"] == "deployed"
        assert details["deployment_info"]["ray_cluster_url"] == "b-head:6379"
        assert details["deployment_info"]["endpoint"] == f"http://b-serve:8000/{NS}/mv"
        history = (await client.get(f"{BASE}/mv/events")).json()["events"]
        assert [(e["event_type"], e["cluster"]) for e in history[:3]] == [
            ("deployment.deleted", "a"),
            ("deployment.failed", "a"),
            ("deployment.deleting", "a"),
        ]


async def _history_has(db, model_id: str, event_type: str) -> bool:
    doc = await model(db, model_id)
    return any(h["event_type"] == event_type for h in doc.get("deployment_history", []))


async def _command(settings: Settings, command_type: CommandType, cluster: str) -> DeploymentCommand | None:
    for command in await commands(settings, expected=0):
        if command.command_type is command_type and command.cluster == cluster:
            return command
    return None


@pytest.mark.parametrize("lost_by", ["silence", "serve_down"])
async def test_a_lost_cluster_turns_its_models_unhealthy_and_they_recover_when_it_returns(
    cluster_topics, worker, db, producer, make_key, lost_by
) -> None:
    """Lost either way: its bridge stops reporting (`silence`), or keeps reporting that the cluster does
    not answer (`serve_down`: Ray's processes stopped, the bridge alive)."""
    settings = cluster_topics
    await db.ray_clusters.insert_one(cluster_document("a", healthy=False))
    await db.custom_models.insert_one(
        seed_model_document(NS, "lost", desired_cluster="a", desired_state="deployed")
    )
    reporting = asyncio.create_task(_report_every(producer, settings, "a", 0.5, "lost"))
    try:
        await eventually(lambda: _cluster(db, "a", healthy=True))
        await deployed_on(producer, settings, db, "lost", "a")
    finally:
        reporting.cancel()
    if lost_by == "serve_down":
        reporting = asyncio.create_task(_report_every(producer, settings, "a", 0.5, serve_up=False))

    # No more reports that Serve is up: after the timeout the worker says so, through the events topic.
    doc = await eventually(lambda: _status(db, "lost", "unhealthy"), timeout_s=30)
    assert doc["deployment_message"] == "cluster a unreachable" and doc["deployed"] is False
    assert doc["deployment_history"][-1]["message"] == "cluster a unreachable"
    await eventually(lambda: _cluster(db, "a", unreachable=True))
    async with api_client(settings, await make_key(NS)) as client:
        [view] = (await client.get("/v1/clusters")).json()["clusters"]
        assert view["healthy"] is False and view["models"] == 1

    # The cluster comes back: reports again, and its bridge re-announces the true state. The worker's
    # "unreachable" event may still land after that, so the worker asks the bridge for a resync; this test
    # plays the bridge and answers each one with the model's true state. It keeps reporting, as a bridge does:
    # a single report would turn the cluster unreachable again after the timeout.
    reporting.cancel()
    answering = asyncio.create_task(_answer_resyncs(producer, settings, "a", "lost"))
    reporting = asyncio.create_task(_report_every(producer, settings, "a", 0.5, "lost"))
    try:
        await send(producer, settings, bridge_event(EventType.READY, "lost", "a"))
        assert await eventually(lambda: _command(settings, CommandType.RESYNC, "a"))
        doc = await eventually(lambda: _status(db, "lost", "deployed"))
        assert doc["deployed"] is True
        await eventually(lambda: _cluster(db, "a", healthy=True, unreachable=False))
    finally:
        answering.cancel()
        reporting.cancel()


async def _answer_resyncs(producer, settings: Settings, cluster: str, model_id: str) -> None:
    answered: set[uuid.UUID] = set()
    while True:
        for command in await commands(settings, expected=0):
            if command.command_type is CommandType.RESYNC and command.command_id not in answered:
                answered.add(command.command_id)
                await send(producer, settings, bridge_event(EventType.READY, model_id, cluster))
        await asyncio.sleep(0.5)


async def _status(db, model_id: str, status: str) -> dict[str, Any] | None:
    doc = await model(db, model_id)
    return doc if doc.get("deployment_status") == status else None


async def _cluster(db, name: str, **expected: Any) -> bool:
    doc = await db.ray_clusters.find_one({"name": name})
    return all(doc.get(k) == v for k, v in expected.items())


async def test_failover_deploys_on_another_fitting_cluster_after_the_timeout(
    cluster_topics, worker, db, producer, make_key
) -> None:
    settings = cluster_topics
    await db.ray_clusters.insert_many(
        [cluster_document("a", healthy=False), cluster_document("b", healthy=False)]
    )
    await db.custom_models.insert_many([seed_model_document(NS, "fo"), seed_model_document(NS, "stay")])
    keep_b_alive = asyncio.create_task(_report_every(producer, settings, "b", 0.5))
    keep_a_alive = asyncio.create_task(_report_every(producer, settings, "a", 0.5, "fo", "stay"))
    try:
        await eventually(lambda: _cluster(db, "a", healthy=True))
        await eventually(lambda: _cluster(db, "b", healthy=True))
        async with api_client(settings, await make_key(NS)) as client:
            deploy = await client.post(f"{BASE}/fo/deploy", json={"cluster": "a", "failover": True})
            assert deploy.status_code == 200
            assert (await client.post(f"{BASE}/stay/deploy", json={"cluster": "a"})).status_code == 200
        await deployed_on(producer, settings, db, "fo", "a")
        await deployed_on(producer, settings, db, "stay", "a")
        keep_a_alive.cancel()  # b keeps reporting, a goes silent

        to_b = await eventually(lambda: _command(settings, CommandType.DEPLOY, "b"), timeout_s=30)
        assert to_b.model_id == "fo"
        assert (await model(db, "fo"))["desired_cluster"] == "b"
        await eventually(lambda: _status(db, "stay", "unhealthy"))
        await send(producer, settings, bridge_event(EventType.READY, "fo", "b"))
        await eventually(lambda: _on(db, "fo", "b"))
        assert await eventually(lambda: _command(settings, CommandType.UNDEPLOY, "a"))
        assert (await model(db, "stay")).get("cluster") == "a", "no failover asked: it waits for a"
    finally:
        keep_a_alive.cancel()
        keep_b_alive.cancel()


async def _report_every(
    producer, settings: Settings, cluster: str, interval_s: float, *apps: str, serve_up: bool = True
) -> None:
    while True:
        await send(
            producer, settings, report(cluster, *apps, cpus=2 if cluster == "b" else 4, serve_up=serve_up)
        )
        await asyncio.sleep(interval_s)


async def test_a_report_listing_an_application_placed_elsewhere_gets_it_undeployed(
    cluster_topics, worker, db, producer
) -> None:
    settings = cluster_topics
    await db.ray_clusters.insert_many([cluster_document("a"), cluster_document("b")])
    await db.custom_models.insert_one(
        seed_model_document(
            NS, "moved", cluster="b", desired_cluster="b", deployed=True, deployment_status="deployed"
        )
    )
    await send(producer, settings, report("a", "moved"), report("b", "moved"))
    stray = await eventually(lambda: _command(settings, CommandType.UNDEPLOY, "a"))
    assert stray.model_id == "moved"
    assert await _command(settings, CommandType.UNDEPLOY, "b") is None


@pytest.mark.parametrize("session_ms", [3000], ids=["3s_sessions"])  # a redelivery would double the DLQ
async def test_bad_reports_go_to_the_dlq_and_older_ones_change_nothing(
    cluster_topics, worker, db, producer
) -> None:
    settings = cluster_topics
    await db.ray_clusters.insert_one(cluster_document("a", healthy=False))
    newer, older = report("a", cpus=3), report("a", cpus=1)
    await send(producer, settings, newer)
    await eventually(lambda: _cluster(db, "a", healthy=True))
    await producer.send_and_wait(settings.cluster_health_topic, value=b"{not json", key=b"a")
    await producer.send_and_wait(settings.cluster_health_topic, value=encode(newer), key=b"someone-else")
    await send(producer, settings, msgspec.structs.replace(older, sequence=newer.sequence - 1))
    dead = await read_topic(settings, settings.dlq_topic, expected=2)
    reasons = sorted(dict(r.headers)["dlq.reason"] for r in dead)
    assert reasons == [b"key_mismatch", b"undecodable"]
    doc = await db.ray_clusters.find_one({"name": "a"})
    assert doc["resources"]["cpu_free"] == 3 and doc["last_report_sequence"] == newer.sequence


async def test_modelreg_dev_registers_its_one_cluster_as_local_and_keeps_it(settings, db) -> None:
    from modelreg.services.devstack.stack import register_local_cluster

    await asyncio.to_thread(register_local_cluster, settings)
    await asyncio.to_thread(register_local_cluster, settings)  # a restarted `modelreg dev`
    [doc] = await db.ray_clusters.find({}).to_list(None)
    assert (doc["name"], doc["ray_address"]) == ("local", settings.ray_address)
    assert doc["serve_url"] == f"http://{settings.serve_host}:{settings.serve_port}"
    # Its next Ray head listens on another dashboard port: the record follows, its labels stay.
    await db.ray_clusters.update_one({"name": "local"}, {"$set": {"labels": {"pool": "dev"}}})
    moved = msgspec.structs.replace(settings, ray_address="http://127.0.0.1:1", serve_port=2)
    await asyncio.to_thread(register_local_cluster, moved)
    [doc] = await db.ray_clusters.find({}).to_list(None)
    assert (doc["ray_address"], doc["serve_url"]) == ("http://127.0.0.1:1", f"http://{settings.serve_host}:2")
    assert doc["labels"] == {"pool": "dev"}
