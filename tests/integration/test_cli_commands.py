"""`modelreg models deploy|undeploy` put a decodable command on the commands topic, keyed by the model, and
record it in the audit trail (`via` cli) as the API's requests are; `models register` records its insert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

from modelreg.shared.contracts import CommandType, decode_command
from modelreg.shared.settings import Settings
from tests.conftest import read_topic
from tests.integration.test_keys_cli import modelreg


async def audit_entries(db) -> list[dict]:
    return await db.audit_log.find({}, {"_id": 0}).sort([("at", 1), ("entry_id", 1)]).to_list()


async def test_cli_publishes_deploy_and_undeploy_commands(topics: Settings, db) -> None:
    env = {**os.environ, **topics.as_env()}
    printed = []
    for action in ("deploy", "undeploy"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelreg.services.cli",
                "models",
                action,
                "--namespace",
                "ns_cli",
                "--model-id",
                "m1",
            ],
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
        )
        printed.append(result.stdout.strip())

    records = await read_topic(topics, topics.commands_topic, expected=2)

    commands = [decode_command(r.key, r.value) for r in sorted(records, key=lambda r: r.offset)]
    assert [c.command_type for c in commands] == [CommandType.DEPLOY, CommandType.UNDEPLOY]
    assert {r.key for r in records} == {b"ns_cli/m1"}
    assert len({r.partition for r in records}) == 1  # one model's commands stay in order
    assert printed == [str(c.command_id) for c in commands]
    entries = await audit_entries(db)
    assert [(e["action"], e["namespaces"], e["model_id"]) for e in entries] == [
        ("model.deploy", ["ns_cli"], "m1"),
        ("model.undeploy", ["ns_cli"], "m1"),
    ]
    for entry, command in zip(entries, commands, strict=True):
        assert (entry["via"], entry["key_prefix"], entry["request_id"]) == ("cli", None, None)
        assert (entry["outcome"], entry["code"]) == ("done", None)
        assert entry["details"] == {"command_id": str(command.command_id), "sent": True}
        assert entry["at"] <= entry["settled_at"]


async def test_a_command_refused_by_the_contract_or_kafka_is_recorded_so(topics: Settings, db) -> None:
    invalid = modelreg(topics, "models", "deploy", "--namespace", "ns_cli", "--model-id", "a b")
    no_broker = msgspec.structs.replace(topics, kafka_bootstrap_servers="127.0.0.1:9")
    unsent = modelreg(no_broker, "models", "undeploy", "--namespace", "ns_cli", "--model-id", "m1")

    assert invalid.returncode == 2 and "not published, the message is invalid" in invalid.stderr
    assert unsent.returncode == 1 and "not published, Kafka refused it" in unsent.stderr
    assert await read_topic(topics, topics.commands_topic, expected=0) == []
    entries = await audit_entries(db)
    assert [(e["action"], e["model_id"], e["outcome"], e["code"], e["details"]) for e in entries] == [
        ("model.deploy", "a b", "refused", "invalid_command", {}),
        ("model.undeploy", "m1", "failed", None, {}),
    ]
    assert all(e["via"] == "cli" and e["settled_at"] is not None for e in entries)


async def test_without_its_audit_entry_a_command_is_not_sent(topics: Settings, db) -> None:
    no_database = msgspec.structs.replace(topics, mongodb_url="mongodb://127.0.0.1:9/?connectTimeoutMS=500")

    result = modelreg(no_database, "models", "deploy", "--namespace", "ns_cli", "--model-id", "m1")

    assert result.returncode == 1 and "its audit entry could not be stored" in result.stderr
    assert await read_topic(topics, topics.commands_topic, expected=0) == []


async def test_cli_registration_is_recorded_and_a_taken_id_refused(topics: Settings, db) -> None:
    archive = Path(topics.archive_root) / "m.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"x")
    args = ["--namespace", "ns_cli", "--name", "n", "--format", "onnx", "--archive-url", archive.as_uri()]
    args += ["--hash", "0" * 64]

    first = modelreg(topics, "models", "register", "--model-id", "m1", *args)
    taken = modelreg(topics, "models", "register", "--model-id", "m1", *args[:3], "other", *args[4:])
    same_version = modelreg(topics, "models", "register", "--model-id", "m2", *args)

    assert first.returncode == 0, first.stderr
    assert taken.returncode != 0 and same_version.returncode != 0
    entries = await audit_entries(db)
    assert [(e["action"], e["model_id"], e["outcome"], e["code"], e["target"]) for e in entries] == [
        ("model.upload", "m1", "done", None, {"name": "n", "version": "1"}),
        ("model.upload", "m1", "refused", "model_id_taken", {"name": "other", "version": "1"}),
        ("model.upload", "m2", "refused", "model_version_exists", {"name": "n", "version": "1"}),
    ]
    assert all((e["via"], e["namespaces"], e["key_prefix"]) == ("cli", ["ns_cli"], None) for e in entries)
    assert entries[0]["details"] == {"model_hash": "0" * 64, "archive_url": archive.as_uri()}


async def test_cli_refuses_an_event_the_worker_would_dead_letter(topics: Settings) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelreg.services.cli",
            "events",
            "publish",
            "--type",
            "started",
            "--namespace",
            "ns_cli",
            "--model-id",
            "m1",
            "--endpoint",
            "http://x/" + "a" * 100_000,
        ],
        env={**os.environ, **topics.as_env()},
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "not published, the message is invalid" in result.stderr and "endpoint" in result.stderr
    assert await read_topic(topics, topics.events_topic, expected=0) == []
