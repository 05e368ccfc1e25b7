"""In-memory fakes behind the project's own ports, for fast unit tests of the service layer.

`FakeServe` is a `ServeAdapter`, `InMemoryModels` the registry as the bridge reads it and as the worker's
applier writes it (compare-and-set on the sequence), `RecordingPublisher` a Kafka `Publisher`. Integration
and end-to-end tests use the real servers instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from modelreg.services.serve_bridge.bridge import Bridge, build_bridge
from modelreg.services.serve_bridge.events import EventPublisher
from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.ports import ServeRejected, ServeUnavailable
from modelreg.services.serve_bridge.ray_calls import RayCalls
from modelreg.services.serve_bridge.transitions import AppObservation, DeploymentObservation
from modelreg.shared.adapters.kafka import Message
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.cluster_routing import ObservedPlacement
from modelreg.shared.contracts import (
    ClusterResources,
    DeploymentCommand,
    DeploymentEvent,
    ModelKey,
    decode_command,
    decode_event,
    encode,
)
from modelreg.shared.deployment_rules import ObservedChange, ObservedDeployment, lost_writes
from modelreg.shared.documents import ModelDetails
from modelreg.shared.settings import Settings


class FakeServe:
    """Ray Serve as a dict of applications. While `down`, every call fails like a dead Serve controller."""

    cluster_url = "127.0.0.1:6379"

    def __init__(self, applications: dict[str, AppObservation] | None = None) -> None:
        self.apps: dict[str, AppObservation] = dict(applications or {})
        self.deployed: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.reconnects = 0
        self.down = False
        self.reject: str | None = None  # the reason Serve gives when it refuses the next deploy
        self.free = ClusterResources(
            cpu_total=2, cpu_free=1.5, memory_total_bytes=2**30, memory_free_bytes=2**29
        )

    def _answer(self) -> None:
        if self.down:
            raise ServeUnavailable("ActorDiedError: the Serve controller died")

    def connect(self) -> None:
        self._answer()

    def reconnect(self) -> None:
        self.reconnects += 1
        self.down = False  # a new driver session reaches the restarted controller

    def close(self) -> None:
        pass

    def applications(self, prefix: str) -> dict[str, AppObservation]:
        self._answer()
        return {name: app for name, app in self.apps.items() if name.startswith(prefix + ".")}

    def serve_up(self) -> bool:
        self._answer()
        return True

    def start_serve(self) -> None:
        self._answer()

    def resources(self) -> ClusterResources:
        self._answer()
        return self.free

    def deploy(
        self,
        *,
        app_name: str,
        route_prefix: str,
        deployment_name: str,
        spec: ModelSpec,
        ray_actor_options: dict[str, Any],
    ) -> None:
        self._answer()
        if self.reject is not None:
            raise ServeRejected(self.reject)
        self.deployed.append(
            dict(
                app_name=app_name,
                route_prefix=route_prefix,
                deployment_name=deployment_name,
                spec=spec,
                ray_actor_options=ray_actor_options,
            )
        )
        self.apps[app_name] = app(deployment_name, "DEPLOYING", deployment_status="UPDATING")

    def delete(self, app_name: str) -> None:
        self._answer()
        self.deleted.append(app_name)
        if app_name in self.apps:
            self.apps[app_name] = app(self.apps[app_name].deployment_name or "", "DELETING")


def app(
    deployment_name: str, status: str = "RUNNING", message: str = "", deployment_status: str = "HEALTHY"
) -> AppObservation:
    return AppObservation(
        status=status,
        message=message,
        deployments={deployment_name: DeploymentObservation(status=deployment_status)},
    )


class RecordingPublisher:
    """A Kafka `Publisher` that keeps what it was given, encoded as the topic would carry it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.failures: list[BaseException] = []  # raised, one per publish, before anything is recorded

    async def publish(self, topic: str, message: Message) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((topic, message.key.kafka_key(), encode(message)))

    def events(self) -> list[DeploymentEvent]:
        # Decoded as the worker decodes them: what is published must pass the contract.
        return [decode_event(key, value) for _, key, value in self.sent]

    def commands(self) -> list[DeploymentCommand]:
        return [decode_command(key, value) for _, key, value in self.sent]


class InMemoryModels:
    """The registry as the bridge reads it, in a dict."""

    def __init__(self, models: Iterable[ModelDetails] = ()) -> None:
        self.details: dict[ModelKey, ModelDetails] = {}
        self.on_serve: set[ModelKey] = set()  # what keys_observed_on_serve answers
        self.placements: dict[ModelKey, ObservedPlacement] = {}  # a model's placement, when it has one
        for details in models:
            self.add(details)

    def add(self, details: ModelDetails) -> ModelKey:
        key = ModelKey(details.namespace_id, details.model_id)
        self.details[key] = details
        return key

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        return self.details.get(key)

    async def keys_observed_on_serve(self) -> list[ModelKey]:
        return sorted(self.on_serve, key=str)

    async def observed_on_serve_with_cluster(self) -> dict[ModelKey, ObservedPlacement]:
        return {key: self.placements.get(key, ObservedPlacement()) for key in sorted(self.on_serve, key=str)}


def make_bridge(
    settings: Settings,
    serve: FakeServe,
    models: InMemoryModels,
    storage: ArchiveStorage | None = None,
    stop: asyncio.Event | None = None,
) -> tuple[Bridge, RecordingPublisher, RayCalls]:
    """The bridge wired to fakes; shut the returned RayCalls down when done."""
    sent = RecordingPublisher()
    calls = RayCalls(serve, timeout_s=30)
    publisher = EventPublisher(settings, sent)
    bridge = build_bridge(
        settings, calls, publisher, models, storage or ArchiveStorage(settings), stop or asyncio.Event()
    )
    return bridge, sent, calls


class InMemoryObservedStore:
    """The applier's `ObservedStateStore` over a dict, with MongoDB's compare-and-set semantics.

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


class FakeClock:
    """A monotonic clock (seconds) that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
