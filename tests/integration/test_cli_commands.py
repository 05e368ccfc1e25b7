"""`modelreg models deploy|undeploy` put a decodable command on the commands topic, keyed by the model."""

from __future__ import annotations

import os
import subprocess
import sys

from modelreg.shared.contracts import CommandType, decode_command
from modelreg.shared.settings import Settings
from tests.conftest import read_topic


async def test_cli_publishes_deploy_and_undeploy_commands(topics: Settings) -> None:
    env = {**os.environ, **topics.as_env()}
    for action in ("deploy", "undeploy"):
        subprocess.run(
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
        )

    records = await read_topic(topics, topics.commands_topic, expected=2)

    commands = [decode_command(r.key, r.value) for r in sorted(records, key=lambda r: r.offset)]
    assert [c.command_type for c in commands] == [CommandType.DEPLOY, CommandType.UNDEPLOY]
    assert {r.key for r in records} == {b"ns_cli/m1"}
    assert len({r.partition for r in records}) == 1  # one model's commands stay in order


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
