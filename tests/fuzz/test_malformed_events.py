"""10,000 malformed records against a real worker process: each one dead-lettered with its reason.

The records are generated from a fixed seed so a failure can be replayed. Their bodies name registered models,
so "no document changed" means something: a worker that let any of them through would move a model.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from modelreg.services.testing.processes import ServiceProcess
from modelreg.services.worker.dead_letters import MAX_KEY_BYTES
from modelreg.shared.contracts import DeploymentEvent, encode
from modelreg.shared.settings import Settings
from tests.conftest import eventually, read_topic
from tests.factories import event
from tests.streams import seed_documents

pytestmark = pytest.mark.timeout(300)

MALFORMED_COUNT = 10_000
NAMESPACE = "ns_proof"
MODELS = [f"fz_{i}" for i in range(20)]

Record = tuple[bytes | None, bytes | None, frozenset[str]]  # key, value, the reasons it may be rejected for
UNDECODABLE = frozenset({"undecodable"})
INVALID = frozenset({"invalid_event"})


def _valid(rng: random.Random, model_id: str | None = None) -> DeploymentEvent:
    model_id = model_id or rng.choice(MODELS)
    event_type = rng.choice(["deployment.started", "deployment.ready", "deployment.failed"])
    return event(event_type, rng.randint(1, 10**6), namespace_id=NAMESPACE, model_id=model_id)


def _valid_dict(rng: random.Random) -> tuple[bytes, dict[str, Any]]:
    evt = _valid(rng)
    return evt.key.kafka_key(), json.loads(encode(evt))


def garbage_bytes(rng: random.Random) -> Record:
    value = rng.randbytes(rng.randint(1, 300))
    # Random bytes can happen to be a JSON scalar ("7"), which decodes but is not an event.
    return rng.choice(MODELS).encode(), value, UNDECODABLE | INVALID


def truncated_json(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    raw = json.dumps(body).encode()
    return key, raw[: rng.randint(0, len(raw) - 1)], UNDECODABLE


def wrong_types(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    field, value = rng.choice(
        [
            ("sequence", "12"),
            ("sequence", -1),
            ("sequence", 2**64),
            ("sequence", 1.5),
            ("sequence", None),
            ("event_type", 3),
            ("event_id", "not-a-uuid"),
            ("event_id", 12345),
            ("occurred_at", "yesterday"),
            ("occurred_at", "2026-01-01T00:00:00"),  # no time zone
            ("namespace_id", ["ns"]),
            ("model_id", {"id": 1}),
            ("endpoint", 8000),
            ("message", False),
        ]
    )
    body[field] = value
    return key, json.dumps(body).encode(), INVALID


def huge_strings(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    field, limit = rng.choice([("message", 8192), ("endpoint", 2048), ("base_image", 256)])
    body[field] = "x" * rng.randint(limit + 1, limit * 8)
    return key, json.dumps(body).encode(), INVALID


def huge_id(rng: random.Random) -> Record:
    _, body = _valid_dict(rng)
    body["model_id"] = "m" * rng.randint(257, 5000)
    return f"{NAMESPACE}/{body['model_id']}".encode(), json.dumps(body).encode(), INVALID


def unknown_field(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    body["".join(rng.choices(string.ascii_lowercase, k=8))] = rng.choice([1, "x", None, [1], {"a": 1}])
    return key, json.dumps(body).encode(), INVALID


def unknown_event_type(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    body["event_type"] = rng.choice(["deployment.exploded", "DEPLOYMENT.READY", "", "ready"])
    return key, json.dumps(body).encode(), INVALID


def missing_field(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    del body[rng.choice(["event_id", "event_type", "namespace_id", "model_id", "sequence", "occurred_at"])]
    return key, json.dumps(body).encode(), INVALID


def ready_without_endpoint(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    body.update(event_type="deployment.ready", endpoint=None)
    return key, json.dumps(body).encode(), INVALID


def id_with_separator(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    body["model_id"] = rng.choice(["a/b", "has space", "tab\tid", "", "nul\x00"])
    return key, json.dumps(body).encode(), INVALID


def not_an_object(rng: random.Random) -> Record:
    value = rng.choice([b"[]", b"null", b'"deployment.ready"', b"42", b"true", b"[{}]"])
    return rng.choice(MODELS).encode(), value, INVALID


def key_mismatch(rng: random.Random) -> Record:
    evt = _valid(rng)
    other = rng.choice(
        [
            None,
            b"",
            f"{NAMESPACE}/{rng.choice([m for m in MODELS if m != evt.model_id])}".encode(),
            f"other_ns/{evt.model_id}".encode(),
            evt.model_id.encode(),
            rng.randbytes(16),
        ]
    )
    return other, encode(evt), frozenset({"key_mismatch"})


def empty_value(rng: random.Random) -> Record:
    return f"{NAMESPACE}/{rng.choice(MODELS)}".encode(), None, frozenset({"empty_value"})


def unknown_model(rng: random.Random) -> Record:
    evt = _valid(rng, model_id=f"ghost_{rng.randint(0, 10**6)}")
    return evt.key.kafka_key(), encode(evt), frozenset({"unknown_model"})


GENERATORS: list[tuple[Callable[[random.Random], Record], int]] = [
    (garbage_bytes, 10),
    (truncated_json, 12),
    (wrong_types, 15),
    (huge_strings, 2),
    (huge_id, 1),
    (unknown_field, 10),
    (unknown_event_type, 8),
    (missing_field, 8),
    (ready_without_endpoint, 5),
    (id_with_separator, 5),
    (not_an_object, 5),
    (key_mismatch, 12),
    (empty_value, 3),
    (unknown_model, 4),
]


def half_megabyte_message(rng: random.Random) -> Record:
    key, body = _valid_dict(rng)
    body["message"] = "y" * 512 * 1024  # far past the limit, still inside the broker's message size
    return key, json.dumps(body).encode(), INVALID


def malformed_records(count: int, seed: int) -> list[tuple[str, Record]]:
    """`count` records: a few half-megabyte ones, the rest drawn from GENERATORS by weight."""
    rng = random.Random(seed)
    generators = [g for g, _ in GENERATORS]
    weights = [w for _, w in GENERATORS]
    chosen = [half_megabyte_message] * 3 + rng.choices(generators, weights=weights, k=count - 3)
    rng.shuffle(chosen)
    return [(generate.__name__, generate(rng)) for generate in chosen]


async def send_all(producer: AIOKafkaProducer, topic: str, records: list[tuple[str, Record]]) -> list[Any]:
    pending = [await producer.send(topic, key=key, value=value) for _, (key, value, _) in records]
    return await asyncio.gather(*pending)


async def snapshot(db) -> dict[str, dict[str, Any]]:
    return {doc["model_id"]: doc async for doc in db.custom_models.find({})}


async def test_ten_thousand_malformed_records_all_dead_lettered_nothing_changed(
    topics: Settings, db, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    await db.custom_models.insert_many(seed_documents([*MODELS, "fz_canary"], namespace_id=NAMESPACE))
    before = await snapshot(db)
    records = malformed_records(MALFORMED_COUNT, seed=2026)
    assert len({kind for kind, _ in records}) == len(GENERATORS) + 1  # every kind is in the mix

    # The worker's start waits for its two consumer groups' joins, each about half a session on tansu:
    # 1.5 s sessions halve that wait, and still leave a live worker seconds before it could be evicted
    # (a rebalance would redeliver a batch and dead-letter it twice).
    worker_settings = msgspec.structs.replace(
        topics, worker_session_timeout_ms=1_500, worker_heartbeat_interval_ms=300
    )
    worker = ServiceProcess("worker", worker_settings, tmp_path / "worker.log").start()
    try:
        sent = await send_all(producer, topics.events_topic, records)
        dead = await read_topic(topics, topics.dlq_topic, expected=MALFORMED_COUNT, timeout_s=240)
        assert worker.alive, worker.log_tail()

        # Every record is in the DLQ exactly once, under the reason its kind calls for.
        source = {(meta.partition, meta.offset): record for meta, record in zip(sent, records, strict=True)}
        seen: Counter[tuple[int, int]] = Counter()
        wrong: list[str] = []
        for entry in dead:
            headers = dict(entry.headers)
            position = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
            seen[position] += 1
            kind, (key, value, reasons) = source[position]
            reason = headers["dlq.reason"].decode()
            # Values over MODELREG_DLQ_MAX_VALUE_BYTES (the half-megabyte ones) and keys over MAX_KEY_BYTES
            # (huge ids) arrive cut, and say so.
            limit = topics.dlq_max_value_bytes
            cut = (value is not None and len(value) > limit) or (key is not None and len(key) > MAX_KEY_BYTES)
            kept_key = key[:MAX_KEY_BYTES] if key is not None else None
            kept = (kept_key, value[:limit] if value is not None else None)
            if (
                reason not in reasons
                or (entry.key, entry.value) != kept
                or not headers["dlq.error"]
                or (headers.get("dlq.truncated") == b"true") != cut
                or headers["dlq.original_size"] != str(len(value or b"")).encode()
            ):
                wrong.append(f"{kind} at {position}: reason {reason!r}, expected one of {sorted(reasons)}")
            assert headers["dlq.source.topic"].decode() == topics.events_topic
        assert wrong == [], wrong[:10]
        assert set(seen) == set(source), f"{len(set(source) - set(seen))} records never dead-lettered"
        assert max(seen.values()) == 1

        assert await snapshot(db) == before

        # Still alive and still applying: a valid event after all that goes through.
        canary = event("deployment.ready", 1, namespace_id=NAMESPACE, model_id="fz_canary")
        await producer.send_and_wait(topics.events_topic, key=canary.key.kafka_key(), value=encode(canary))

        async def canary_applied() -> bool:
            doc = await db.custom_models.find_one({"model_id": "fz_canary"})
            return bool(doc) and doc.get("last_event_sequence") == 1

        await eventually(canary_applied, timeout_s=60)
        assert worker.alive
    finally:
        worker.stop()
