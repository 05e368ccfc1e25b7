"""Quiet deletes: a deleted model's late undeploy events are acknowledged against its tombstone by the real
worker (counted), not dead-lettered; anything else for a missing model still is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.contracts import encode
from modelreg.shared.settings import Settings
from tests.api_support import api_client
from tests.conftest import eventually, read_topic
from tests.factories import event, seed_model_document
from tests.integration.test_api_deployments import deployed_fields

RETENTION_S = 3600.0


def counters(text: str, name: str) -> dict[str, float]:
    return {
        sample.labels.get("event_type") or sample.labels.get("reason", ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_late_undeploy_events_of_a_deleted_model_are_acknowledged(
    topics: Settings, db, producer, make_key, tmp_path: Path
) -> None:
    port = free_port()
    settings = msgspec.structs.replace(topics, worker_metrics_port=port, tombstone_retention_s=RETENTION_S)
    await db.custom_models.insert_one(seed_model_document("ns_t", "gone", **deployed_fields()))
    # Deleted through the API: an undeploy command goes to the bridge, the record goes, a tombstone stays.
    async with api_client(settings, await make_key("ns_t")) as client:
        deleted = await client.delete("/v1/namespaces/ns_t/models/gone")
    assert deleted.status_code == 200 and deleted.json()["undeploy_command_id"] is not None
    tombstone = await db.model_tombstones.find_one({"namespace_id": "ns_t", "model_id": "gone"})
    assert tombstone is not None
    assert tombstone["expires_at"] - tombstone["deleted_at"] == timedelta(seconds=RETENTION_S)
    # A model deleted long ago: its tombstone expired (the TTL index removes such records lazily).
    past = datetime.now(UTC) - timedelta(days=30)
    await db.model_tombstones.insert_one(
        {
            "namespace_id": "ns_t",
            "model_id": "old",
            "deleted_at": past,
            "expires_at": past + timedelta(days=7),
        }
    )

    now = datetime.now(UTC)
    late = [
        event("deployment.deleting", 10, namespace_id="ns_t", model_id="gone", occurred_at=now),
        event("deployment.deleted", 11, namespace_id="ns_t", model_id="gone", occurred_at=now),
    ]
    dead = [
        event("deployment.ready", 12, namespace_id="ns_t", model_id="gone", occurred_at=now),  # not quiet
        event("deployment.deleted", 13, namespace_id="ns_t", model_id="old", occurred_at=now),  # expired
        event("deployment.deleted", 14, namespace_id="ns_t", model_id="never", occurred_at=now),  # unknown
    ]
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log").start()
    try:
        for evt in late + dead:
            await producer.send_and_wait(settings.events_topic, value=encode(evt), key=evt.key.kafka_key())

        async def settled() -> str:
            try:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://{settings.api_host}:{port}/metrics", timeout=5)).text
            except httpx.TransportError as exc:
                raise AssertionError(f"metrics port {port} not answering: {exc!r}") from exc
            quiet = counters(text, "modelreg_worker_events_tombstoned_total")
            dead_lettered = counters(text, "modelreg_worker_events_dead_lettered_total")
            assert sum(quiet.values()) + sum(dead_lettered.values()) == len(late + dead), text[-1500:]
            return text

        text = await eventually(settled, timeout_s=60)
    finally:
        worker.stop()

    assert counters(text, "modelreg_worker_events_tombstoned_total") == {
        "deployment.deleting": 1.0,
        "deployment.deleted": 1.0,
    }
    assert counters(text, "modelreg_worker_events_dead_lettered_total") == {"unknown_model": 3.0}
    records = await read_topic(settings, settings.dlq_topic, expected=3)
    assert sorted(r.key for r in records) == [b"ns_t/gone", b"ns_t/never", b"ns_t/old"]
    assert {dict(r.headers)["dlq.reason"] for r in records} == {b"unknown_model"}
    assert await db.custom_models.count_documents({"namespace_id": "ns_t"}) == 0  # nothing came back
