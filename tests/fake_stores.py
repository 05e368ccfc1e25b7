"""In-memory stand-ins for the project's store ports, for fast unit tests of the services above them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from shared.contracts import DeploymentEvent, ModelKey
from shared.deployment_rules import ObservedChange, ObservedDeployment, lost_writes


class InMemoryObservedStore:
    """`services.worker.applier.ObservedStateStore` over a dict, with MongoDB's compare-and-set semantics.

    `between_read_and_write` runs at the start of every write, as another writer would between the
    applier's read and its write; it may change `models` to make the guards fail.
    """

    def __init__(self, models: dict[ModelKey, ObservedDeployment] | None = None) -> None:
        self.models: dict[ModelKey, ObservedDeployment] = dict(models or {})
        self.history: dict[ModelKey, list[DeploymentEvent]] = {}
        self.writes: list[tuple[list[ObservedChange], datetime]] = []
        self.between_read_and_write: Callable[[InMemoryObservedStore], None] | None = None

    async def load_observed(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]:
        return {key: self.models[key] for key in keys if key in self.models}

    async def write_observed(self, changes: Sequence[ObservedChange], now: datetime) -> set[ModelKey]:
        if not changes:
            return set()
        self.writes.append((list(changes), now))
        if self.between_read_and_write is not None:
            self.between_read_and_write(self)
        for change in changes:
            stored = self.models.get(change.key)
            if stored is not None and stored.last_event_sequence == change.before.last_event_sequence:
                self.models[change.key] = change.after
                self.history.setdefault(change.key, []).extend(change.applied)
        return lost_writes(changes, {key: m.last_event_sequence for key, m in self.models.items()})
