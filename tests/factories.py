"""Building test data: model documents (as the registry or another service would write them) and events."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from modelreg.shared.contracts import DeploymentEvent, EventType, encode

_counter = itertools.count(1)
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def seed_model_document(
    namespace_id: str = "ns_test", model_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """A document with only the seed's fields, as another service might insert it."""
    model_id = model_id or f"model_{next(_counter)}"
    document = {
        "model_id": model_id,
        "namespace_id": namespace_id,
        "name": f"name-{model_id}",
        "version": "1.0.0",
        "model_archive_url": f"s3://models/{namespace_id}/{model_id}.tar.gz",
        "model_format": "onnx",
        "model_hash": hashlib.sha256(model_id.encode()).hexdigest(),
        "deployed": False,
        "deployment_info": None,
        "framework": None,
        "task_type": "classification",
        "input_schema": {"x": "float[]"},
        "output_schema": None,
        "resource_requirements": {"num_cpus": 1.0, "num_gpus": 0, "memory": 4294967296},
        "created_at": BASE_TIME,
        "updated_at": BASE_TIME,
    }
    document.update(overrides)
    return document


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
