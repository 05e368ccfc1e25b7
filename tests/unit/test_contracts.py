"""Decoding events from Kafka records: what is accepted and why the rest is refused."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.shared.contracts import (
    DeploymentEvent,
    EventType,
    InvalidMessage,
    decode_event,
    encode,
    printable_message,
)
from tests.factories import event, record


def valid_body(**overrides) -> dict:
    body = {
        "event_id": "0b6f2f6e-3c1e-4f2a-9c55-0d7b8e0e6b11",  # fixed: it appears in the test ids
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


@pytest.mark.parametrize(
    "endpoint",
    [
        "javascript:alert(1)",
        "ftp://host/model",
        "//host/model",
        "/ns/m",
        "http://",
        "http:///path",
        "http://:8001/ns/m",
        "http://user:secret@host/ns/m",
        "http://host/ns m",
        "http://host/ns/m\n",
        "http://host/\x00",
        " http://host/ns/m",
    ],
)
def test_endpoints_must_be_absolute_http_urls_with_a_host(endpoint: str) -> None:
    body = json.dumps(valid_body(endpoint=endpoint)).encode()
    with pytest.raises(InvalidMessage) as refused:
        decode_event(b"ns/m", body)
    assert refused.value.reason == "invalid_event" and "endpoint" in refused.value.detail


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8001/ns/m",
        "https://models.example.com",
        "http://[::1]:8001/ns/m-1a2b3c?x=1#top",
        "http://serve-0:8000/ns_proof/m_00001",
        "http://evil.example/",  # only MODELREG_EVENT_ENDPOINT_PREFIXES narrows the hosts (worker rule)
    ],
)
def test_http_and_https_endpoints_are_accepted(endpoint: str) -> None:
    assert decode_event(b"ns/m", json.dumps(valid_body(endpoint=endpoint)).encode()).endpoint == endpoint


@pytest.mark.parametrize("field", ["base_image", "message", "ray_cluster_url", "ray_deployment_name"])
@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b[31m", "\r", "\x7f", "\x9b", "\x0b"])
def test_control_characters_are_refused_in_text_fields(field: str, control: str) -> None:
    for text in (f"a{control}b", f"ab{control}", f"{control}"):
        with pytest.raises(InvalidMessage) as refused:
            decode_event(b"ns/m", json.dumps(valid_body(**{field: text})).encode())
        assert refused.value.reason == "invalid_event" and field in refused.value.detail


@pytest.mark.parametrize("field", ["base_image", "ray_cluster_url", "ray_deployment_name"])
@pytest.mark.parametrize("whitespace", ["\n", "\t"])
def test_newlines_and_tabs_are_refused_outside_messages(field: str, whitespace: str) -> None:
    for text in (f"a{whitespace}b", f"ab{whitespace}"):
        with pytest.raises(InvalidMessage):
            decode_event(b"ns/m", json.dumps(valid_body(**{field: text})).encode())


def test_messages_may_span_lines_and_carry_tabs_and_any_printable_text() -> None:
    message = "Traceback (most recent call last):\n\tValueError: bad weights\n… ünïcode ✓\n"
    assert decode_event(b"ns/m", json.dumps(valid_body(message=message)).encode()).message == message


def test_usual_values_of_the_bridge_pass() -> None:
    body = valid_body(
        ray_cluster_url="127.0.0.1:6379",
        ray_deployment_name="modelreg.ns.m",
        base_image="modelreg/serve-onnx:latest",
    )
    decoded = decode_event(b"ns/m", json.dumps(body).encode())
    assert decoded.ray_cluster_url == "127.0.0.1:6379"
    for address in ("auto", "ray://head:10001"):
        assert decode_event(b"ns/m", json.dumps(valid_body(ray_cluster_url=address)).encode())


@given(st.text(max_size=200))
def test_printable_message_makes_any_text_an_acceptable_message(text: str) -> None:
    cleaned = printable_message(text)
    decoded = decode_event(b"ns/m", json.dumps(valid_body(message=cleaned)).encode())
    assert decoded.message == cleaned
    assert printable_message("line 1\r\nline 2\x1b[0m") == "line 1\nline 2\ufffd[0m"
