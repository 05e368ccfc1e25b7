"""`modelreg events publish` refuses, before any connection, an event the worker would dead-letter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def publish_to_an_unreachable_broker(*options: str) -> subprocess.CompletedProcess[str]:
    # An unreachable broker: reaching it would hang or fail differently, not exit 2 with the reason.
    env = {**os.environ, "MODELREG_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "modelreg.services.cli",
            "events",
            "publish",
            "--namespace",
            "ns",
            "--model-id",
            "m",
        ]
        + list(options),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [("--endpoint", "javascript:alert(1)"), ("--message", "forged\rline"), ("--base-image", "img\x1b[2J")],
)
def test_publish_refuses_invalid_values_before_connecting(option, value) -> None:
    result = publish_to_an_unreachable_broker("--type", "started", option, value)
    assert result.returncode == 2, result.stderr
    assert "invalid_event" in result.stderr and option.removeprefix("--").replace("-", "_") in result.stderr


@pytest.mark.parametrize(
    "missing", [[], ["--endpoint", "http://127.0.0.1:8001/ns/m"], ["--base-image", "img"]]
)
def test_publish_refuses_a_ready_event_without_endpoint_or_image(missing) -> None:
    # The contract's cross-field rule (ready needs both) is refused like any other field: exit 2, the reason.
    result = publish_to_an_unreachable_broker("--type", "ready", *missing)
    assert result.returncode == 2, result.stderr
    assert "invalid_event" in result.stderr and "requires endpoint and base_image" in result.stderr
    assert "Traceback" not in result.stderr


def test_publishing_commands_start_without_mongodb_or_the_api_stack() -> None:
    # Each CLI process pays for what it imports: a command that only speaks Kafka imports no MongoDB
    # (Beanie, pymongo), no Litestar and no Ray. The command runs for real up to its refusal (exit 2).
    args = ["events", "publish", "--namespace", "ns", "--model-id", "m", "--type", "started"]
    script = (
        "import sys\n"
        "from modelreg.services import cli\n"
        f"code = cli.main({[*args, '--endpoint', 'javascript:alert(1)']!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'beanie', 'pymongo', 'litestar', 'ray'})\n"
        "print(code, heavy)\n"
    )
    env = {**os.environ, "MODELREG_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split("\n")[-2:] == ["2 []", ""], (result.stdout, result.stderr)
