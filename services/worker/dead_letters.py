"""What the worker writes to the dead-letter topic: the rejected record, cut to a bounded size, and why.

Every part is bounded (key, value, each header value), so a dead letter always fits in one Kafka request
and writing it can never fail for its size.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_KEY_BYTES = 1024
MAX_ERROR_BYTES = 1024
MAX_NAME_BYTES = 256  # reason and source topic (Kafka topic names have at most 249 characters)


class DeadLetterRecord(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _text(text: str, limit: int) -> bytes:
    """UTF-8, at most `limit` bytes, never ending in a partial character."""
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore").encode()


def dead_letter_record(
    *,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    max_value_bytes: int,
) -> DeadLetterRecord:
    """The DLQ copy of a rejected record: its key and value prefixes, with where it came from and why."""
    headers = [
        ("dlq.reason", _text(reason, MAX_NAME_BYTES)),
        ("dlq.error", _text(detail, MAX_ERROR_BYTES)),
        ("dlq.source.topic", _text(source_topic, MAX_NAME_BYTES)),
        ("dlq.source.partition", str(source_partition).encode()),
        ("dlq.source.offset", str(source_offset).encode()),
        ("dlq.original_size", str(len(value) if value is not None else 0).encode()),
    ]
    value_cut = value is not None and len(value) > max_value_bytes
    key_size = len(key) if key is not None else 0
    key_cut = key_size > MAX_KEY_BYTES
    if value_cut or key_cut:
        headers.append(("dlq.truncated", b"true"))
    if key_cut:
        headers.append(("dlq.original_key_size", str(key_size).encode()))
    return DeadLetterRecord(
        key=key[:MAX_KEY_BYTES] if key is not None else None,
        value=value[:max_value_bytes] if value is not None else None,
        headers=headers,
    )


def without_payload(record: DeadLetterRecord) -> DeadLetterRecord:
    """The fallback when the broker refuses even the bounded copy: the headers, no key, an empty value.

    (Empty rather than null: Kafka producers need a key or a value.)
    """
    headers = [(name, data) for name, data in record.headers if name != "dlq.truncated"]
    return DeadLetterRecord(key=None, value=b"", headers=[*headers, ("dlq.truncated", b"true")])
