"""Service layer of the worker: apply a batch of decoded events to the stored models."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from shared.adapters.mongo import ObservedChange
from shared.contracts import DeploymentEvent, ModelKey
from shared.deployment_rules import ObservedDeployment, apply_events, group_by_model
from shared.documents import utc_now

# Compare-and-set rounds before giving up on a batch (another writer keeps moving the same model).
MAX_WRITE_ROUNDS = 5


class ObservedStore(Protocol):
    """The two store methods the applier needs (`ModelStore`; an in-memory fake in unit tests)."""

    async def load_observed(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]: ...

    async def write_observed(self, changes: Sequence[ObservedChange], now: datetime) -> set[ModelKey]:
        """Compare-and-set on each model's sequence; returns the models that moved meanwhile."""
        ...


class ConcurrentUpdateError(RuntimeError):
    pass


class BatchOutcome(msgspec.Struct, kw_only=True):
    applied: int = 0
    stale: int = 0
    models_written: int = 0
    unknown_models: set[ModelKey] = msgspec.field(default_factory=set)


class EventApplier:
    def __init__(self, store: ObservedStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock

    async def apply(self, events: Sequence[DeploymentEvent]) -> BatchOutcome:
        """One guarded write per model, whatever the number of its events in the batch."""
        outcome = BatchOutcome()
        pending = group_by_model(events)
        for _ in range(MAX_WRITE_ROUNDS):
            current = await self.store.load_observed(pending)
            changes: list[ObservedChange] = []
            for key, model_events in pending.items():
                if key not in current:
                    outcome.unknown_models.add(key)
                    continue
                after, applied = apply_events(current[key], model_events)
                if applied:
                    changes.append(ObservedChange(key, current[key], after, applied))
                else:
                    outcome.stale += len(model_events)
            conflicts = await self.store.write_observed(changes, self.clock())
            for change in changes:
                if change.key not in conflicts:
                    outcome.models_written += 1
                    outcome.applied += len(change.applied)
                    outcome.stale += len(pending[change.key]) - len(change.applied)
            if not conflicts:
                return outcome
            pending = {key: pending[key] for key in conflicts}
        raise ConcurrentUpdateError(f"models kept changing under the worker: {sorted(map(str, pending))}")
