"""Event streams for the proof tests: generate them, publish them, and check the database against the rules.

The expected state of every model is computed with `shared.deployment_rules.apply_events` from the events
that were produced, so a test compares what the worker stored with what the rules say it must store.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from modelreg.shared.adapters.kafka import KafkaPublisher
from modelreg.shared.contracts import DeploymentEvent, EventType, ModelKey
from modelreg.shared.deployment_rules import ObservedDeployment, apply_events
from modelreg.shared.settings import Settings
from tests.factories import BASE_TIME, seed_model_document

EVENT_TYPES = list(EventType)


def model_ids(count: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}_{i:05d}" for i in range(count)]


def random_stream(
    models: Sequence[str], events: int, seed: int, namespace_id: str = "ns_proof"
) -> list[DeploymentEvent]:
    """`events` events spread over `models`, interleaved at random; each model's sequences increase.

    Sequences skip numbers at random, like a bridge that restarted, so only the order matters.
    """
    rng = random.Random(seed)
    next_sequence = dict.fromkeys(models, 0)
    stream: list[DeploymentEvent] = []
    for _ in range(events):
        model_id = rng.choice(models)
        next_sequence[model_id] += rng.randint(1, 3)
        sequence = next_sequence[model_id]
        event_type = rng.choice(EVENT_TYPES)
        fields: dict[str, Any] = {}
        if event_type is EventType.READY or rng.random() < 0.3:
            fields["endpoint"] = f"http://serve-{rng.randint(0, 3)}:8000/{namespace_id}/{model_id}"
            fields["base_image"] = f"modelreg/serve-onnx:{rng.randint(1, 3)}"
        if rng.random() < 0.5:
            fields["ray_deployment_name"] = f"{namespace_id}--{model_id}--{rng.randint(0, 9)}"
        if rng.random() < 0.3:
            fields["ray_cluster_url"] = f"ray://head-{rng.randint(0, 2)}:10001"
        if rng.random() < 0.4:
            fields["message"] = f"message {sequence}"
        stream.append(
            DeploymentEvent(
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                event_type=event_type,
                namespace_id=namespace_id,
                model_id=model_id,
                sequence=sequence,
                occurred_at=BASE_TIME + timedelta(seconds=sequence),
                **fields,
            )
        )
    return stream


def seed_documents(models: Iterable[str], namespace_id: str = "ns_proof") -> list[dict[str, Any]]:
    return [seed_model_document(namespace_id, model_id) for model_id in models]


async def publish(producer: AIOKafkaProducer, settings: Settings, events: Sequence[DeploymentEvent]) -> None:
    """Send events keyed by model (so each model's order holds) and wait for every acknowledgement."""
    await KafkaPublisher(settings, producer=producer).publish_all(settings.events_topic, events)


@dataclass(frozen=True)
class Expected:
    state: ObservedDeployment
    history_event_ids: list[str]


def expected_states(events: Iterable[DeploymentEvent], history_limit: int) -> dict[ModelKey, Expected]:
    by_model: dict[ModelKey, list[DeploymentEvent]] = {}
    for evt in events:
        by_model.setdefault(evt.key, []).append(evt)
    result = {}
    for key, model_events in by_model.items():
        state, applied = apply_events(ObservedDeployment(), model_events)
        result[key] = Expected(state, [str(e.event_id) for e in applied][-history_limit:])
    return result


def _stored_info(doc: dict[str, Any]) -> dict[str, Any] | None:
    return doc.get("deployment_info")


def differences(expected: dict[ModelKey, Expected], docs: Iterable[dict[str, Any]]) -> list[str]:
    """Every way the stored documents differ from the expected states (empty when they match exactly)."""
    found = {ModelKey(d["namespace_id"], d["model_id"]): d for d in docs}
    problems: list[str] = []
    for key, want in expected.items():
        doc = found.get(key)
        if doc is None:
            problems.append(f"{key}: document missing")
            continue
        state = want.state
        want_fields = {
            "last_event_sequence": state.last_event_sequence,
            "deployed": state.deployed,
            "deployment_status": str(state.status),
            "deployment_message": state.message,
            "observed_at": state.observed_at,
            "deployment_info": msgspec.to_builtins(state.deployment_info, builtin_types=(type(BASE_TIME),))
            if state.deployment_info
            else None,
            "history": want.history_event_ids,
        }
        got_fields = {name: doc.get(name) for name in want_fields}
        got_fields["history"] = [h["event_id"] for h in doc.get("deployment_history", [])]
        for name, value in want_fields.items():
            if got_fields[name] != value:
                problems.append(f"{key}: {name} is {got_fields[name]!r}, expected {value!r}")
    return problems


def final_sequences(expected: dict[ModelKey, Expected]) -> dict[ModelKey, int | None]:
    return {key: want.state.last_event_sequence for key, want in expected.items()}


async def reached(collection: Any, sequences: dict[ModelKey, int | None]) -> int:
    """How many models already carry their final sequence."""
    count = 0
    async for doc in collection.find({}, {"namespace_id": 1, "model_id": 1, "last_event_sequence": 1}):
        key = ModelKey(doc["namespace_id"], doc["model_id"])
        if key in sequences and doc.get("last_event_sequence") == sequences[key]:
            count += 1
    return count
