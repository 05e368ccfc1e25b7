"""`modelreg models deploy --wait` and `modelreg models watch`: transitions printed as they commit."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from modelreg.services.worker.applier import EventApplier
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import CommandType, EventType, decode_command
from modelreg.shared.settings import Settings
from tests.conftest import read_topic
from tests.factories import event, seed_model_document


async def start_cli(settings: Settings, *args: str, **options: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modelreg.services.cli",
        "models",
        *args,
        env={**os.environ, **settings.as_env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **options,
    )


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line, (await process.stderr.read()).decode() if process.stderr else ""
    return line.decode().rstrip("\n")


async def apply(*events) -> None:
    await EventApplier(ModelStore()).apply(list(events))


@pytest.mark.parametrize(
    ("outcome", "exit_code"), [(EventType.READY, 0), (EventType.FAILED, 1)], ids=["deployed", "failed"]
)
async def test_deploy_wait_shows_progress_and_exits_with_the_outcome(topics, db, outcome, exit_code) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_cli", "m1"))
    process = await start_cli(topics, "deploy", "--namespace", "ns_cli", "--model-id", "m1", "--wait")
    assert await read_line(process) == "ns_cli/m1  status=not_deployed"
    records = await read_topic(topics, topics.commands_topic, expected=1)
    command = decode_command(records[0].key, records[0].value)
    assert command.command_type == CommandType.DEPLOY
    # Recorded as the API's deploy requests are, over the connection that follows the model.
    (entry,) = await db.audit_log.find().to_list()
    assert (entry["action"], entry["via"], entry["model_id"], entry["outcome"]) == (
        "model.deploy",
        "cli",
        "m1",
        "done",
    )
    assert entry["details"] == {"command_id": str(command.command_id), "sent": True}
    await apply(event(EventType.STARTED, 1, "ns_cli", "m1", message="fetching the archive"))
    await apply(event(outcome, 2, "ns_cli", "m1", message=None if outcome is EventType.READY else "no GPU"))
    started = await read_line(process)
    assert "deployment.changed  deployment.started  status=pending  sequence=1" in started
    assert "message='fetching the archive'" in started
    finished = await read_line(process)
    assert ("status=deployed" if exit_code == 0 else "status=failed") in finished
    assert await asyncio.wait_for(process.wait(), 60) == exit_code


async def test_deploy_wait_on_a_missing_model_says_so(topics, db) -> None:
    process = await start_cli(topics, "deploy", "--namespace", "ns_cli", "--model-id", "nope", "--wait")
    assert await read_line(process) == "no model ns_cli/nope"
    assert await asyncio.wait_for(process.wait(), 60) == 2
    assert await db.audit_log.count_documents({}) == 0  # nothing was sent


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_deploy_wait_interrupted_leaves_the_deploy_running_and_says_so(topics, db, stop_signal) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_cli", "m1"))
    process = await start_cli(topics, "deploy", "--namespace", "ns_cli", "--model-id", "m1", "--wait")
    assert await read_line(process) == "ns_cli/m1  status=not_deployed"
    records = await read_topic(topics, topics.commands_topic, expected=1)  # sent before the signal
    process.send_signal(stop_signal)
    assert await asyncio.wait_for(process.wait(), 60) == 130
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr
    command_id = str(decode_command(records[0].key, records[0].value).command_id)
    assert f"command {command_id} was sent" in stderr and "modelreg models watch" in stderr


async def test_watch_prints_each_transition_until_interrupted(settings, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_cli", "m1"))
    await db.custom_models.insert_one(seed_model_document("ns_cli", "m2"))
    process = await start_cli(settings, "watch", "--namespace", "ns_cli", "--model-id", "m1")
    assert await read_line(process) == "ns_cli/m1  status=not_deployed"
    await apply(event(EventType.STARTED, 1, "ns_cli", "m2"))
    await apply(event(EventType.READY, 2, "ns_cli", "m1"))
    line = await read_line(process)
    assert line.startswith("ns_cli/m1  deployment.changed  deployment.ready  status=deployed  sequence=2")
    assert "endpoint=http://127.0.0.1:8001/ns_cli/m1" in line
    await db.custom_models.delete_one({"namespace_id": "ns_cli", "model_id": "m1"})
    assert await read_line(process) == "ns_cli/m1  model.deleted  status=gone"
    process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 60) == 130


def block_sigint() -> None:
    # What some launchers do to their children (Ray's process launcher, for one): the mask is inherited.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@pytest.mark.parametrize(
    ("stop_signal", "launch"),
    [(signal.SIGTERM, {}), (signal.SIGINT, {"preexec_fn": block_sigint})],
    ids=["sigterm", "sigint-blocked-by-the-launcher"],
)
async def test_watch_ends_on_a_stop_signal_however_it_was_launched(settings, db, stop_signal, launch) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_cli", "m1"))
    process = await start_cli(settings, "watch", "--namespace", "ns_cli", "--model-id", "m1", **launch)
    assert await read_line(process) == "ns_cli/m1  status=not_deployed"
    process.send_signal(stop_signal)
    assert await asyncio.wait_for(process.wait(), 60) == 130
