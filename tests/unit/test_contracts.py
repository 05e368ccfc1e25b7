"""Decoding events from Kafka records: what is accepted and why the rest is refused."""

from __future__ import annotations

import json
import uuid

import pytest

from shared.contracts import DeploymentEvent, EventType, InvalidMessage, decode_event, encode
from tests.factories import event, record


def valid_body(**overrides) -> dict:
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": "deployment.started",
        "namespace_id": "ns",
        "model_id": "m",
        "sequence": 7,
        "occurred_at": "2026-05-01T10:00:00Z",
    }
    body.update(overrides)
    return body


def test_round_trip() -> None:
    evt = event("deployment.ready", 3, ray_cluster_url="ray://h:10001", message="ok")
    key, value = record(evt)
    assert decode_event(key, value) == evt


def test_nullable_fields_default_to_none() -> None:
    decoded = decode_event(b"ns/m", json.dumps(valid_body()).encode())
    assert isinstance(decoded, DeploymentEvent) and decoded.event_type is EventType.STARTED
    assert decoded.endpoint is None and decoded.message is None


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"ns/m", None, "empty_value"),
        (b"ns/m", b"\xff\x00garbage", "undecodable"),
        (b"ns/m", json.dumps(valid_body()).encode()[:40], "undecodable"),
        (b"ns/m", json.dumps(valid_body(sequence="7")).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(sequence=-1)).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(sequence=2**64)).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(event_type="deployment.exploded")).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(event_id="not-a-uuid")).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(occurred_at="2026-05-01T10:00:00")).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(surprise=1)).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(message="x" * 100_000)).encode(), "invalid_event"),
        (b"ns/m", json.dumps(valid_body(event_type="deployment.ready")).encode(), "invalid_event"),
        (b"a/b/m", json.dumps(valid_body(namespace_id="a/b")).encode(), "invalid_event"),
        (b"ns/other", json.dumps(valid_body()).encode(), "key_mismatch"),
        (None, json.dumps(valid_body()).encode(), "key_mismatch"),
        (b"ns/m", b"[1, 2, 3]", "invalid_event"),
    ],
)
def test_bad_records_are_refused_with_a_reason(key, value, reason) -> None:
    with pytest.raises(InvalidMessage) as refused:
        decode_event(key, value)
    assert refused.value.reason == reason
    assert refused.value.detail


def test_encoding_is_rfc3339_json() -> None:
    body = json.loads(encode(event("deployment.started", 1)))
    assert body["occurred_at"].endswith("Z") and body["event_type"] == "deployment.started"
    uuid.UUID(body["event_id"])
