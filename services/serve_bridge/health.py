"""The bridge's cluster health reports: every MODELREG_BRIDGE_HEALTH_INTERVAL_S one `ClusterHealthReport` on
MODELREG_CLUSTER_HEALTH_TOPIC (keyed by the cluster's name), also while the cluster does not answer.

The report says whether Serve is up, the Serve status of every application the bridge owns, and the
cluster's free and total CPU, GPU and memory (the dashboard's `/api/cluster_status`). The registry marks a
cluster unreachable when its reports stop (`MODELREG_CLUSTER_UNREACHABLE_AFTER_S`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

import structlog
from aiokafka.errors import KafkaError

from modelreg.services.serve_bridge.ports import ServeRejected, ServeUnavailable
from modelreg.services.serve_bridge.ray_calls import RayHung
from modelreg.services.serve_bridge.session import ServeSession
from modelreg.shared.contracts import (
    ClusterHealthReport,
    ClusterResources,
    ModelKey,
    ServeApplicationState,
    encode,
    printable_message,
)
from modelreg.shared.event_building import SequenceClock
from modelreg.shared.retry import RetryPolicy, Stopping
from modelreg.shared.serve_routes import serve_base_url
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")
MAX_MESSAGE = 2000


class KeyedPublisher(Protocol):
    async def publish_keyed(self, topic: str, key: bytes, value: bytes) -> None: ...


def health_report(
    settings: Settings,
    *,
    sequence: int,
    ray_address: str | None,
    serve_up: bool,
    applications: Iterable[tuple[ModelKey, str]] = (),
    resources: ClusterResources | None = None,
    message: str | None = None,
    now: datetime | None = None,
) -> ClusterHealthReport:
    """PURE: the report of this bridge's cluster from what was observed (`applications`: model, status)."""
    if message is not None:
        message = printable_message(message)[:MAX_MESSAGE]
    return ClusterHealthReport(
        report_id=uuid.uuid4(),
        cluster=settings.bridge_cluster,
        sequence=sequence,
        reported_at=now or datetime.now(UTC),
        serve_up=serve_up,
        ray_address=ray_address,
        serve_url=serve_base_url(settings),
        resources=resources or ClusterResources(),
        applications=[
            ServeApplicationState(namespace_id=key.namespace_id, model_id=key.model_id, status=status)
            for key, status in sorted(applications)
        ],
        message=message,
    )


class HealthReporter:
    def __init__(
        self,
        settings: Settings,
        session: ServeSession,
        publisher: KeyedPublisher,
        retry: RetryPolicy,
        clock: SequenceClock | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.publisher = publisher
        self.retry = retry
        self.clock = clock or SequenceClock()
        self._last_serve_up: bool | None = None

    async def observe(self) -> ClusterHealthReport:
        """What the cluster looks like now; an unreachable cluster is a report with serve_up false."""
        adapter, calls = self.session.adapter, self.session.calls
        address = adapter.cluster_url or self.settings.ray_address
        try:
            serve_up = await calls.call(adapter.serve_up)
            owned = await self.session.owned_applications()
            resources: ClusterResources | None = None
            message = None if serve_up else "Ray Serve is not running on the cluster"
            try:
                resources = await calls.call(adapter.resources)
            except ServeUnavailable as exc:  # e.g. the autoscaler has not reported yet
                message = f"resources unknown: {exc}"
        except (ServeUnavailable, ServeRejected, RayHung) as exc:
            return health_report(
                self.settings,
                sequence=self.clock.next(),
                ray_address=address,
                serve_up=False,
                message=f"the Ray cluster does not answer: {exc}",
            )
        return health_report(
            self.settings,
            sequence=self.clock.next(),
            ray_address=address,
            serve_up=serve_up,
            applications=[(key, app.status) for key, (_, app) in owned.items()],
            resources=resources,
            message=message,
        )

    async def report_once(self) -> ClusterHealthReport:
        report = await self.observe()
        await self.retry.run(
            "publish_health",
            lambda: self.publisher.publish_keyed(
                self.settings.cluster_health_topic, report.kafka_key(), encode(report)
            ),
            (KafkaError, OSError),
        )
        # Every report at debug; a change of serve_up (and the first report) at info, or warning when down.
        changed = self._last_serve_up is not report.serve_up
        self._last_serve_up = report.serve_up
        level = ("info" if report.serve_up else "warning") if changed else "debug"
        getattr(log, level)(
            "cluster health reported",
            cluster=report.cluster,
            serve_up=report.serve_up,
            applications=len(report.applications),
            cpu_free=report.resources.cpu_free,
            message=report.message,
        )
        return report

    async def run(self) -> None:
        """Report until stopped, one report per interval."""
        stop = self.retry.stop
        while not stop.is_set():
            try:
                await self.report_once()
            except Stopping:
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.settings.bridge_health_interval_s)
            except TimeoutError:
                pass
