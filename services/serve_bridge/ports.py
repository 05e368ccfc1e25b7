"""What the bridge needs from outside, as Protocols: the registry (read only), Ray Serve, the event stream.

Production passes `ModelStore`, `RayDashboardAdapter` and `EventPublisher`; unit tests pass the fakes of
`tests/fakes.py`. The Serve errors live here, not in the Ray adapter, so the bridge's logic never imports ray.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.transitions import AppObservation
from modelreg.shared.cluster_routing import ObservedPlacement
from modelreg.shared.contracts import ClusterResources, DeploymentEvent, EventType, ModelFormat, ModelKey
from modelreg.shared.documents import ModelDetails


class ServeUnavailable(RuntimeError):
    """Ray or the Serve controller cannot be reached; reconnect and try again."""


class ServeRejected(RuntimeError):
    """Ray Serve refused the request (e.g. a route prefix already taken); trying again will not help."""


class ModelReader(Protocol):
    """The registry, as far as the bridge reads it."""

    async def get_details(self, key: ModelKey) -> ModelDetails | None: ...

    async def keys_observed_on_serve(self) -> list[ModelKey]:
        """Models the registry shows as running on Serve (pending, deployed, unhealthy, deleting)."""
        ...

    async def observed_on_serve_with_cluster(self) -> dict[ModelKey, ObservedPlacement]:
        """The same models, each with its placement (its `cluster`, the `ray_cluster_url` its deployment info
        holds, its `desired_cluster`; None where it has none yet)."""
        ...


class ServeAdapter(Protocol):
    """Ray Serve's blocking calls; they raise ServeUnavailable or ServeRejected (`ray_dashboard.py`)."""

    @property
    def cluster_url(self) -> str | None: ...

    def connect(self) -> None: ...

    def reconnect(self) -> None: ...

    def close(self) -> None: ...

    def applications(self, prefix: str) -> dict[str, AppObservation]: ...

    def serve_up(self) -> bool:
        """Whether Serve's controller runs on the cluster."""
        ...

    def start_serve(self) -> None:
        """Start Serve (with the bridge's HTTP options) unless it runs; it runs the applications there are."""
        ...

    def resources(self) -> ClusterResources:
        """The cluster's total and free CPU, GPU and memory."""
        ...

    def deploy(
        self,
        *,
        app_name: str,
        route_prefix: str,
        deployment_name: str,
        spec: ModelSpec,
        ray_actor_options: dict[str, Any],
    ) -> None: ...

    def delete(self, app_name: str) -> None: ...


class EventSink(Protocol):
    """Builds and publishes the bridge's deployment events (`events.EventPublisher`)."""

    cluster_url: str | None
    cluster: str

    def build(
        self,
        key: ModelKey,
        event_type: EventType,
        *,
        app_name: str | None,
        model_format: ModelFormat | str | None,
        message: str | None = None,
    ) -> DeploymentEvent: ...

    async def publish(self, event: DeploymentEvent) -> None: ...
