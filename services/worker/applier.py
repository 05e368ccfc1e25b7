"""Service layer of the worker: apply a batch of decoded events to the stored models."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from modelreg.shared.contracts import DeploymentEvent, ModelKey
from modelreg.shared.deployment_rules import (
    ObservedChange,
    ObservedDeployment,
    apply_events,
    clusters_to_undeploy,
    group_by_model,
)
from modelreg.shared.documents import utc_now

# Compare-and-set rounds before giving up on a batch (another writer keeps moving the same model).
MAX_WRITE_ROUNDS = 5


class ConcurrentUpdateError(RuntimeError):
    pass


class ObservedStateStore(Protocol):
    """What the applier needs from the store (`shared.adapters.mongo.ModelStore` in production)."""

    async def load_observed(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]:
        """The observed state of the models that exist among `keys`."""
        ...

    async def write_observed(self, changes: Sequence[ObservedChange], now: datetime) -> set[ModelKey]:
        """Compare-and-set each change against `change.before`; returns the keys whose write lost."""
        ...


class TombstoneReader(Protocol):
    """Keys of deleted models (`shared.adapters.mongo.TombstoneStore` in production)."""

    async def expiries(self, keys: Iterable[ModelKey]) -> dict[ModelKey, datetime]:
        """When each deleted model's tombstone expires; keys without one are left out."""
        ...


class BatchOutcome(msgspec.Struct, kw_only=True):
    applied: int = 0
    stale: int = 0
    models_written: int = 0
    unknown_models: set[ModelKey] = msgspec.field(default_factory=set)
    # (model, cluster): undeploy commands owed after the writes (a move completed, a stray announced ready).
    undeploys: list[tuple[ModelKey, str]] = msgspec.field(default_factory=list)
    # Of the unknown models, those deleted recently: their tombstone's expiry.
    tombstones: dict[ModelKey, datetime] = msgspec.field(default_factory=dict)


class EventApplier:
    def __init__(
        self,
        store: ObservedStateStore,
        clock: Callable[[], datetime] = utc_now,
        tombstones: TombstoneReader | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tombstones = tombstones

    async def apply(self, events: Sequence[DeploymentEvent]) -> BatchOutcome:
        """One guarded write per model, whatever the number of its events in the batch."""
        outcome = await self._apply(events)
        if outcome.unknown_models and self.tombstones is not None:
            outcome.tombstones = await self.tombstones.expiries(outcome.unknown_models)
        return outcome

    async def _apply(self, events: Sequence[DeploymentEvent]) -> BatchOutcome:
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
                    outcome.undeploys += [(change.key, c) for c in sorted(clusters_to_undeploy(change))]
            if not conflicts:
                return outcome
            pending = {key: pending[key] for key in conflicts}
        raise ConcurrentUpdateError(f"models kept changing under the worker: {sorted(map(str, pending))}")
