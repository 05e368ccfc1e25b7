"""The bridge's hold on Ray Serve: calls through the executor, reconnecting when the cluster stops answering.

`generation` counts connections to the cluster's dashboard. A loop that saw Serve fail asks to recover from
the generation it saw, so loops failing together start one new session. After each new session
`on_reconnected` (the watcher's reconciliation) runs; if Serve fails again during it, a new session is
started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from modelreg.services.serve_bridge import metrics
from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.naming import parse_app_name, parse_deployment_name
from modelreg.services.serve_bridge.ports import EventSink, ServeAdapter, ServeUnavailable
from modelreg.services.serve_bridge.ray_calls import RayCalls
from modelreg.services.serve_bridge.transitions import AppObservation
from modelreg.shared.contracts import ModelKey
from modelreg.shared.retry import RetryPolicy
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")

# What Serve runs that the bridge owns: application name and observation per model.
OwnedApplications = dict[ModelKey, tuple[str, AppObservation]]
COUNTED_STATUSES = ("DEPLOYING", "RUNNING", "UNHEALTHY", "DEPLOY_FAILED", "DELETING")


class ServeSession:
    def __init__(self, settings: Settings, calls: RayCalls, publisher: EventSink, retry: RetryPolicy) -> None:
        self.settings = settings
        self.calls = calls
        self.publisher = publisher
        self.retry = retry
        self.prefix = settings.serve_app_prefix
        self.generation = 0
        self.on_reconnected: Callable[[], Awaitable[None]] | None = None
        self._recover_lock = asyncio.Lock()

    @property
    def adapter(self) -> ServeAdapter:
        return self.calls.adapter

    def _connected(self, reconnect: bool) -> None:
        """(Re)connect, then make sure Serve runs: a fresh cluster has none until the first deploy, and a
        cluster without Serve is reported unhealthy and so never chosen by placement (docs/clusters.md)."""
        (self.adapter.reconnect if reconnect else self.adapter.connect)()
        self.adapter.start_serve()

    async def connect(self) -> None:
        await self.retry.run(
            "connect_ray", lambda: self.calls.call(self._connected, False), (ServeUnavailable,)
        )
        self.publisher.cluster_url = self.adapter.cluster_url
        log.info("connected to Ray Serve", ray=self.adapter.cluster_url, serve=self.settings.serve_port)

    async def recover(self, seen_generation: int) -> None:
        """Start a new Ray session and reconcile, unless another loop already did since `seen_generation`."""
        async with self._recover_lock:
            if self.generation != seen_generation:
                return
            while True:
                await self.retry.run(
                    "reconnect_ray", lambda: self.calls.call(self._connected, True), (ServeUnavailable,)
                )
                self.publisher.cluster_url = self.adapter.cluster_url
                self.generation += 1
                metrics.RAY_RECONNECTS.inc()
                log.warning("reconnected to Ray", ray=self.adapter.cluster_url)
                if self.on_reconnected is None:
                    return
                try:
                    await self.on_reconnected()
                    return
                except ServeUnavailable as exc:
                    log.warning("Ray failed again while reconciling", error=str(exc))

    async def owned_applications(self) -> OwnedApplications:
        """The applications named with the bridge's prefix; also counts them per status for the metrics."""
        apps = await self.calls.call(self.adapter.applications, self.prefix)
        owned: OwnedApplications = {}
        counts: dict[str, int] = {}
        for name, app in apps.items():
            key = parse_app_name(self.prefix, name)
            if key is None or parse_deployment_name(app.deployment_name) is None:
                continue
            owned[key] = (name, app)
            counts[app.status] = counts.get(app.status, 0) + 1
        for status in COUNTED_STATUSES:
            metrics.APPLICATIONS.labels(status=status).set(counts.get(status, 0))
        return owned

    async def deploy(
        self,
        *,
        app_name: str,
        route_prefix: str,
        deployment_name: str,
        spec: ModelSpec,
        ray_actor_options: dict[str, Any],
    ) -> None:
        await self.calls.call(
            self.adapter.deploy,
            app_name=app_name,
            route_prefix=route_prefix,
            deployment_name=deployment_name,
            spec=spec,
            ray_actor_options=ray_actor_options,
        )

    async def delete(self, app_name: str) -> None:
        await self.calls.call(self.adapter.delete, app_name)

    async def close(self) -> None:
        await self.calls.call(self.adapter.close)
