"""The worker's applier on an in-memory store: one write per model, unknown models, compare-and-set rounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelreg.services.worker.applier import MAX_WRITE_ROUNDS, ConcurrentUpdateError, EventApplier
from modelreg.shared.contracts import DeploymentStatus, ModelKey
from modelreg.shared.deployment_rules import ObservedDeployment, apply_events
from tests.factories import event as make_event
from tests.fakes import InMemoryObservedStore

NOW = datetime(2026, 2, 1, tzinfo=UTC)
A = ModelKey("ns", "a")
B = ModelKey("ns", "b")
NEVER = ObservedDeployment()


def event(event_type: str, sequence: int, model_id: str):
    return make_event(event_type, sequence, namespace_id="ns", model_id=model_id)


def applier(store: InMemoryObservedStore) -> EventApplier:
    return EventApplier(store, clock=lambda: NOW)


def at_sequence(sequence: int) -> ObservedDeployment:
    return ObservedDeployment(status=DeploymentStatus.PENDING, last_event_sequence=sequence)


def moved_by_another_writer(key: ModelKey, sequence: int):
    def write(store: InMemoryObservedStore) -> None:
        store.models[key] = at_sequence(sequence)

    return write


async def test_each_model_gets_one_write_with_all_its_events_and_the_clock_time() -> None:
    store = InMemoryObservedStore({A: NEVER, B: NEVER})
    batch = [
        event("deployment.started", 1, model_id="a"),
        event("deployment.ready", 2, model_id="a"),
        event("deployment.started", 5, model_id="b"),
    ]

    outcome = await applier(store).apply(batch)

    assert (outcome.applied, outcome.stale, outcome.models_written) == (3, 0, 2)
    assert not outcome.unknown_models
    [(changes, now)] = store.writes
    assert now == NOW and sorted(c.key.model_id for c in changes) == ["a", "b"]
    assert store.models[A] == apply_events(NEVER, batch[:2])[0]
    assert store.models[A].status is DeploymentStatus.DEPLOYED
    assert [e.sequence for e in store.history[A]] == [1, 2]


async def test_unknown_models_are_reported_and_the_others_applied() -> None:
    store = InMemoryObservedStore({A: NEVER})
    outcome = await applier(store).apply(
        [event("deployment.started", 1, model_id="a"), event("deployment.started", 1, model_id="ghost")]
    )

    assert outcome.unknown_models == {ModelKey("ns", "ghost")}
    assert (outcome.applied, outcome.stale, outcome.models_written) == (1, 0, 1)
    assert ModelKey("ns", "ghost") not in store.models


async def test_events_not_newer_than_the_stored_sequence_are_stale_and_write_nothing() -> None:
    store = InMemoryObservedStore({A: at_sequence(10)})
    outcome = await applier(store).apply(
        [event("deployment.ready", 9, model_id="a"), event("deployment.failed", 10, model_id="a")]
    )

    assert (outcome.applied, outcome.stale, outcome.models_written) == (0, 2, 0)
    assert store.writes == [] and store.models[A] == at_sequence(10)


async def test_a_writer_between_read_and_write_makes_the_applier_decide_again_on_what_it_wrote() -> None:
    store = InMemoryObservedStore({A: NEVER, B: NEVER})
    batch = [
        event("deployment.started", 2, model_id="a"),  # older than the other writer's: stale on the retry
        event("deployment.ready", 4, model_id="a"),
        event("deployment.started", 1, model_id="b"),
    ]

    def once(store: InMemoryObservedStore) -> None:
        store.between_read_and_write = None
        moved_by_another_writer(A, 3)(store)

    store.between_read_and_write = once
    outcome = await applier(store).apply(batch)

    first, second = (changes for changes, _ in store.writes)
    assert {c.key for c in first} == {A, B}
    assert [c.key for c in second] == [A], "only the model that lost is read and written again"
    assert second[0].before == at_sequence(3)
    assert [e.sequence for e in second[0].applied] == [4]
    assert store.models[A].last_event_sequence == 4 and store.models[A].deployed
    assert (outcome.applied, outcome.stale, outcome.models_written) == (2, 1, 2)


async def test_a_writer_that_wins_with_a_newer_sequence_leaves_the_batch_stale() -> None:
    store = InMemoryObservedStore({A: NEVER})

    def once(store: InMemoryObservedStore) -> None:
        store.between_read_and_write = None
        moved_by_another_writer(A, 100)(store)

    store.between_read_and_write = once
    outcome = await applier(store).apply([event("deployment.ready", 7, model_id="a")])

    assert len(store.writes) == 1, "nothing newer to write on the second round"
    assert (outcome.applied, outcome.stale, outcome.models_written) == (0, 1, 0)
    assert store.models[A] == at_sequence(100)


async def test_a_model_that_keeps_moving_fails_the_batch_after_the_last_round() -> None:
    store = InMemoryObservedStore({A: NEVER, B: NEVER})
    moves = iter(range(-1000, 0))  # always older than the batch: every round has something to write
    store.between_read_and_write = lambda s: moved_by_another_writer(A, next(moves))(s)

    with pytest.raises(ConcurrentUpdateError, match="ns/a"):
        await applier(store).apply(
            [event("deployment.started", 1, model_id="a"), event("deployment.started", 1, model_id="b")]
        )

    assert len(store.writes) == MAX_WRITE_ROUNDS
    assert store.models[B].last_event_sequence == 1, "the model that did not move was written in round one"
    assert all([c.key for c in changes] == [A] for changes, _ in store.writes[1:])


async def test_a_conflict_resolved_in_the_last_round_succeeds() -> None:
    store = InMemoryObservedStore({A: NEVER})
    moves = iter(range(-MAX_WRITE_ROUNDS, -1))  # one move fewer than there are rounds

    def move_while_it_can(store: InMemoryObservedStore) -> None:
        for sequence in moves:
            moved_by_another_writer(A, sequence)(store)
            return

    store.between_read_and_write = move_while_it_can
    outcome = await applier(store).apply([event("deployment.started", 1, model_id="a")])

    assert len(store.writes) == MAX_WRITE_ROUNDS
    assert (outcome.applied, outcome.models_written) == (1, 1)
    assert store.models[A].last_event_sequence == 1


async def test_a_model_deleted_between_read_and_write_is_not_retried() -> None:
    store = InMemoryObservedStore({A: NEVER})
    store.between_read_and_write = lambda s: s.models.pop(A, None)

    await applier(store).apply([event("deployment.started", 1, model_id="a")])

    assert len(store.writes) == 1 and A not in store.models
