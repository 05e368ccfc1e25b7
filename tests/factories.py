"""Building test data: model documents (as the registry or another service would write them) and events."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from modelreg.services.testing.documents import BASE_TIME, seed_model_document
from modelreg.shared.contracts import DeploymentEvent, EventType, encode

__all__ = ["BASE_TIME", "event", "record", "seed_model_document"]


def event(
    event_type: EventType | str,
    sequence: int,
    namespace_id: str = "ns_test",
    model_id: str = "model_1",
    **fields: Any,
) -> DeploymentEvent:
    event_type = EventType(event_type)
    if event_type is EventType.READY:
        fields.setdefault("endpoint", f"http://127.0.0.1:8001/{namespace_id}/{model_id}")
        fields.setdefault("base_image", "modelreg/serve-onnx:latest")
    if "occurred_at" not in fields:  # only when absent: a huge sequence overflows a timedelta
        fields["occurred_at"] = BASE_TIME + timedelta(seconds=sequence)
    return DeploymentEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        namespace_id=namespace_id,
        model_id=model_id,
        sequence=sequence,
        **fields,
    )


def record(evt: DeploymentEvent) -> tuple[bytes, bytes]:
    """(key, value) as the events topic carries them."""
    return evt.key.kafka_key(), encode(evt)
