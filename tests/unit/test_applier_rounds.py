"""The worker's applier on an in-memory store: one guarded write per model, and its compare-and-set rounds."""

from __future__ import annotations

import msgspec
import pytest

from services.worker.applier import MAX_WRITE_ROUNDS, ConcurrentUpdateError, EventApplier
from shared.contracts import DeploymentStatus, ModelKey
from shared.deployment_rules import ObservedDeployment
from shared.documents import ModelDetails
from tests.factories import BASE_TIME, event
from tests.fakes import InMemoryModels

A, B = ModelKey("ns_test", "a"), ModelKey("ns_test", "b")


def store_with(*keys: ModelKey) -> InMemoryModels:
    store = InMemoryModels()
    for key in keys:
        store.add(
            ModelDetails(
                namespace_id=key.namespace_id,
                model_id=key.model_id,
                name=key.model_id,
                version="1",
                model_archive_url="file:///m.tar.gz",
                model_format="onnx",
                model_hash="ab" * 32,
            )
        )
    return store


def moved_by_another_writer(store: InMemoryModels, key: ModelKey, sequence: int) -> None:
    store.observed[key] = msgspec.structs.replace(store.observed[key], last_event_sequence=sequence)


async def test_a_batch_is_one_write_per_model_and_stale_events_are_counted() -> None:
    store = store_with(A, B)
    applier = EventApplier(store, clock=lambda: BASE_TIME)
    events = [
        event("deployment.started", 1, model_id="a"),
        event("deployment.ready", 2, model_id="a"),
        event("deployment.started", 1, model_id="a"),  # a duplicate: stale
        event("deployment.started", 5, model_id="b"),
        event("deployment.started", 3, model_id="nobody"),
    ]

    outcome = await applier.apply(events)

    assert (outcome.applied, outcome.stale, outcome.models_written) == (3, 1, 2)
    assert outcome.unknown_models == {ModelKey("ns_test", "nobody")}
    assert len(store.writes) == 1 and {c.key for c in store.writes[0]} == {A, B}
    assert (
        store.observed[A].status is DeploymentStatus.DEPLOYED and store.observed[A].last_event_sequence == 2
    )


async def test_a_model_moved_by_another_writer_is_read_again_and_retried() -> None:
    store = store_with(A, B)
    moves = [lambda s: moved_by_another_writer(s, A, 1)]  # the other writer applied A's sequence 1 first
    store.before_write = lambda s: moves.pop()(s) if moves else None
    applier = EventApplier(store, clock=lambda: BASE_TIME)

    outcome = await applier.apply(
        [
            event("deployment.started", 1, model_id="a"),
            event("deployment.ready", 2, model_id="a"),
            event("deployment.started", 1, model_id="b"),
        ]
    )

    # Round 2 wrote A alone, from its new state: sequence 1 was stale by then.
    assert len(store.writes) == 2 and [c.key for c in store.writes[1]] == [A]
    assert store.writes[1][0].before.last_event_sequence == 1
    assert (outcome.applied, outcome.stale, outcome.models_written) == (2, 1, 2)
    assert store.observed[A].last_event_sequence == 2 and store.observed[B].last_event_sequence == 1


async def test_a_model_that_keeps_moving_gives_up_after_the_last_round() -> None:
    store = store_with(A)
    sequences = iter(range(100, 200))
    store.before_write = lambda s: moved_by_another_writer(s, A, next(sequences))
    applier = EventApplier(store)

    with pytest.raises(ConcurrentUpdateError, match="ns_test/a"):
        await applier.apply([event("deployment.started", 1_000, model_id="a")])

    assert len(store.writes) == MAX_WRITE_ROUNDS


async def test_events_the_model_already_has_are_not_written() -> None:
    store = store_with(A)
    store.observed[A] = ObservedDeployment(last_event_sequence=9)

    outcome = await EventApplier(store).apply([event("deployment.ready", 9, model_id="a")])

    assert (outcome.applied, outcome.stale, outcome.models_written) == (0, 1, 0)
    assert store.writes == [[]]
