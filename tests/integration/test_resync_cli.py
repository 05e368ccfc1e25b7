"""`modelreg models resync` unfreezes a model: guard reset in MongoDB, resync command on Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec

from modelreg.services.worker.main import run_worker
from modelreg.shared.contracts import CommandType, decode_command
from tests.conftest import eventually, read_topic
from tests.factories import event, seed_model_document
from tests.integration.test_keys_cli import modelreg
from tests.integration.test_worker import publish, stored

FROZEN = dict(
    deployed=True,
    deployment_status="deleting",
    deployment_message=None,
    last_event_sequence=2**63 - 1,
    observed_at=datetime(9999, 1, 1, tzinfo=UTC),
    deployment_history=[],
)


async def test_resync_resets_the_guard_and_asks_the_bridge_to_re_announce(topics, db, producer) -> None:
    await db.custom_models.insert_one(seed_model_document(model_id="m_frozen", **FROZEN))
    await db.custom_models.insert_one(seed_model_document(model_id="m_bystander", **FROZEN))

    result = modelreg(topics, "models", "resync", "--namespace", "ns_test", "--model-id", "m_frozen")

    assert result.returncode == 0, result.stderr
    doc = await stored(db, "m_frozen")
    assert doc["last_event_sequence"] is None and doc["observed_at"] is None
    assert doc["updated_at"] > seed_model_document()["updated_at"]
    assert (await stored(db, "m_bystander"))["last_event_sequence"] == 2**63 - 1
    (record,) = await read_topic(topics, topics.commands_topic, expected=1)
    command = decode_command(record.key, record.value)
    assert command.command_type is CommandType.RESYNC and record.key == b"ns_test/m_frozen"
    assert str(command.command_id) == result.stdout.strip().splitlines()[-1]

    # The bridge's next event (here: a hand-made one with a small sequence) applies again.
    stop = asyncio.Event()
    # Short sessions, as tests/faults use: the worker's groups join in about half a session each on tansu.
    quick = msgspec.structs.replace(topics, worker_session_timeout_ms=1_000, worker_heartbeat_interval_ms=200)
    worker = asyncio.create_task(run_worker(quick, stop))
    try:
        await publish(producer, topics, event("deployment.deleted", 1, model_id="m_frozen"))

        async def applied() -> dict | None:
            doc = await stored(db, "m_frozen")
            return doc if doc["last_event_sequence"] == 1 else None

        doc = await eventually(applied)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    assert doc["deployed"] is False and doc["deployment_status"] == "not_deployed"


async def test_resync_of_an_unknown_model_fails_and_publishes_nothing(topics, db) -> None:
    result = modelreg(topics, "models", "resync", "--namespace", "ns_test", "--model-id", "ghost")
    assert result.returncode == 1 and "no model ns_test/ghost" in result.stderr
    assert await read_topic(topics, topics.commands_topic, expected=0, timeout_s=2) == []
