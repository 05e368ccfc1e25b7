"""`modelreg events publish` refuses, before any connection, an event the worker would dead-letter."""

from __future__ import annotations

import pytest

from services.cli import main


@pytest.mark.parametrize(
    ("option", "value"),
    [("--endpoint", "javascript:alert(1)"), ("--message", "forged\rline"), ("--base-image", "img\x1b[2J")],
)
def test_publish_refuses_invalid_values_before_connecting(option, value, capsys, monkeypatch) -> None:
    # An unreachable broker: reaching it would hang or fail differently, not exit 2 with the reason.
    monkeypatch.setenv("MODELREG_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    args = ["events", "publish", "--namespace", "ns", "--model-id", "m", "--type", "started", option, value]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "invalid_event" in error and option.removeprefix("--").replace("-", "_") in error
