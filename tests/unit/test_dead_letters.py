"""Dead letters are bounded by construction: whatever was rejected, its DLQ copy fits in one request."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from modelreg.services.worker.dead_letters import MAX_KEY_BYTES, dead_letter_record, without_payload
from modelreg.shared.settings import Settings, SettingsError

KAFKA_DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024


def _record(value: bytes | None, key: bytes | None = b"ns/m", **overrides):
    fields = dict(
        key=key,
        value=value,
        reason="invalid_event",
        detail="Expected `str` of length <= 2048 - at `$.endpoint`",
        source_topic="model-deployment-events",
        source_partition=2,
        source_offset=41,
        max_value_bytes=64 * 1024,
    )
    fields.update(overrides)
    return dead_letter_record(**fields)


def test_a_small_record_is_copied_whole_with_where_it_came_from() -> None:
    dead = _record(b'{"event_id": 1}')
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (b"ns/m", b'{"event_id": 1}')
    assert headers["dlq.reason"] == b"invalid_event"
    assert headers["dlq.source.topic"] == b"model-deployment-events"
    assert (headers["dlq.source.partition"], headers["dlq.source.offset"]) == (b"2", b"41")
    assert headers["dlq.original_size"] == b"15"
    assert "dlq.truncated" not in headers


def test_a_huge_value_is_cut_to_the_limit_and_marked() -> None:
    value = b"x" * 1_048_000
    dead = _record(value, max_value_bytes=1000)
    headers = dict(dead.headers)
    assert dead.value == value[:1000]
    assert headers["dlq.truncated"] == b"true" and headers["dlq.original_size"] == b"1048000"


def test_a_record_without_value_says_size_zero() -> None:
    dead = _record(None)
    assert dead.value is None and dict(dead.headers)["dlq.original_size"] == b"0"


def test_the_worst_case_dead_letter_fits_in_the_default_max_request_size() -> None:
    dead = _record(
        b"v" * 10_000_000,
        key=b"k" * 10_000_000,
        reason="r" * 10_000,
        detail="é" * 1_000_000,  # multi-byte: cut on a character boundary
        source_topic="t" * 10_000,
        source_partition=2**31 - 1,
        source_offset=2**63 - 1,
        max_value_bytes=512 * 1024,  # the largest the setting accepts
    )
    headers = dict(dead.headers)
    assert len(dead.key) == MAX_KEY_BYTES and headers["dlq.original_key_size"] == b"10000000"
    headers["dlq.error"].decode()  # still valid UTF-8
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(dead.key, dead.value, dead.headers)
    assert size < KAFKA_DEFAULT_MAX_REQUEST_SIZE


def test_the_fallback_keeps_only_the_headers() -> None:
    dead = without_payload(_record(b"x" * 10))
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (None, b"")
    assert headers["dlq.truncated"] == b"true" and headers["dlq.original_size"] == b"10"
    assert [name for name, _ in dead.headers].count("dlq.truncated") == 1


def test_the_setting_refuses_a_limit_that_could_not_fit() -> None:
    with pytest.raises(SettingsError, match="dlq_max_value_bytes"):
        Settings.from_env({"MODELREG_DLQ_MAX_VALUE_BYTES": str(1024 * 1024)})
    assert Settings().dlq_max_value_bytes == 64 * 1024
