"""Building deployment events per the published contract (docs/events.md). Pure: no Kafka, no I/O.

Every producer of events (the Ray Serve bridge, `modelreg events publish`, other services through
`shared.adapters.event_producer.DeploymentEventProducer`) builds them here: sequences from one clock per
process, `occurred_at` now, and the contract's limits checked before anything is sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

from modelreg.shared.contracts import (
    DeploymentEvent,
    EventType,
    InvalidMessage,
    decode_event,
    encode,
    now_microseconds,
)


class SequenceClock:
    """Event sequences: microseconds since the epoch, never repeating within a process.

    Derived from the clock, so a restarted producer continues above everything it published before.
    """

    def __init__(self, now: Callable[[], int] = now_microseconds) -> None:
        self._now = now
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, self._now())
        return self._last


def event_type_of(value: EventType | str) -> EventType:
    """`EventType.READY`, `"deployment.ready"` or `"ready"` → `EventType.READY`; ValueError otherwise."""
    if isinstance(value, EventType):
        return value
    text = value if value.startswith("deployment.") else f"deployment.{value}"
    try:
        return EventType(text)
    except ValueError:
        names = ", ".join(t.value.removeprefix("deployment.") for t in EventType)
        raise ValueError(f"unknown event type {value!r}; one of {names}") from None


class EventFields(TypedDict, total=False):
    """The optional fields of a new event: what `build_event` and `DeploymentEventProducer.event` take by
    keyword (the contract's meaning of each in docs/events.md)."""

    endpoint: str | None
    base_image: str | None
    ray_cluster_url: str | None
    ray_deployment_name: str | None
    message: str | None
    cluster: str | None
    occurred_at: datetime | None
    event_id: uuid.UUID | None


def build_event(
    event_type: EventType | str,
    namespace_id: str,
    model_id: str,
    *,
    sequence: int,
    **fields: Unpack[EventFields],
) -> DeploymentEvent:
    """A new event (fresh `event_id`, `occurred_at` now unless given).

    Raises ValueError for a `deployment.ready` without `endpoint` and `base_image` or an unknown type,
    TypeError for a keyword that is not one of `EventFields`; the other limits of the contract are checked
    by `check_event`.
    """
    rest: dict[str, Any] = dict(fields)  # typed by EventFields at the call; the event refuses other keys
    event_id = rest.pop("event_id", None)
    occurred_at = rest.pop("occurred_at", None)
    return DeploymentEvent(
        event_id=event_id or uuid.uuid4(),
        event_type=event_type_of(event_type),
        namespace_id=namespace_id,
        model_id=model_id,
        sequence=sequence,
        occurred_at=occurred_at or datetime.now(UTC),
        **rest,
    )


def check_event(event: DeploymentEvent) -> DeploymentEvent:
    """The event if the worker would accept its encoding, else InvalidMessage saying why (ids, lengths,
    URLs, control characters: the limits msgspec checks on decoding, not on construction)."""
    decode_event(event.key.kafka_key(), encode(event))
    return event


__all__ = ["EventFields", "InvalidMessage", "SequenceClock", "build_event", "check_event", "event_type_of"]
