"""`modelreg events publish` refuses, before any connection, an event the worker would dead-letter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("option", "value"),
    [("--endpoint", "javascript:alert(1)"), ("--message", "forged\rline"), ("--base-image", "img\x1b[2J")],
)
def test_publish_refuses_invalid_values_before_connecting(option, value) -> None:
    # An unreachable broker: reaching it would hang or fail differently, not exit 2 with the reason.
    env = {**os.environ, "MODELREG_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    args = ["events", "publish", "--namespace", "ns", "--model-id", "m", "--type", "started", option, value]
    result = subprocess.run(
        [sys.executable, "-m", "modelreg.services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "invalid_event" in result.stderr and option.removeprefix("--").replace("-", "_") in result.stderr
