"""Decoding deploy/undeploy commands from Kafka records: what the bridge accepts, and why not the rest."""

from __future__ import annotations

import json
import uuid

import pytest

from modelreg.shared.contracts import CommandType, InvalidMessage, decode_command


def command_body(**overrides) -> dict:
    body = {
        "command_id": str(uuid.uuid4()),
        "command_type": "deploy",
        "namespace_id": "ns",
        "model_id": "m",
        "requested_at": "2026-05-01T10:00:00+02:00",
    }
    body.update(overrides)
    return body


def test_a_documented_command_decodes() -> None:
    command = decode_command(b"ns/m", json.dumps(command_body(command_type="undeploy")).encode())
    assert command.command_type is CommandType.UNDEPLOY
    assert command.requested_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"ns/m", None, "empty_value"),
        (b"ns/m", b"{nope", "undecodable"),
        (b"ns/m", json.dumps(command_body(command_type="restart")).encode(), "invalid_command"),
        (b"ns/m", json.dumps(command_body(requested_at="2026-05-01T10:00:00")).encode(), "invalid_command"),
        (b"ns/m", json.dumps(command_body(command_id="1")).encode(), "invalid_command"),
        (b"ns/m", json.dumps(command_body(archive_url="s3://x")).encode(), "invalid_command"),
        (b"ns/other", json.dumps(command_body()).encode(), "key_mismatch"),
        (None, json.dumps(command_body()).encode(), "key_mismatch"),
    ],
)
def test_bad_commands_are_refused_with_a_reason(key, value, reason) -> None:
    with pytest.raises(InvalidMessage) as refused:
        decode_command(key, value)
    assert refused.value.reason == reason
