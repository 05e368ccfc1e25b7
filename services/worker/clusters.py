"""The worker's side of named Ray clusters (docs/clusters.md): it alone writes a cluster's observed health.

- `ClusterHealthConsumer`: the health topic, batch by batch through the shared consumer loop; each
  cluster's newest report is stored (guarded by its sequence, so any order and any number of workers are
  safe); bad reports go to the DLQ like bad events; applications a report lists that are wanted nowhere
  get an undeploy command for that cluster.
- `ClusterWatch.check`: the periodic loss check. A cluster silent (or reported not serving) longer than
  MODELREG_CLUSTER_UNREACHABLE_AFTER_S turns the models placed there `unhealthy` ("cluster NAME
  unreachable") through the events topic, so the history shows it; a model deployed with failover is
  asked on another fitting cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from modelreg.services.worker import metrics
from modelreg.services.worker.commands import deploy_command, resync_command, undeploy_command
from modelreg.services.worker.consumer import RETRYABLE, DeadLetter, DeploymentEventConsumer
from modelreg.shared.adapters.kafka import Batch, Offsets, Publisher
from modelreg.shared.adapters.mongo import PlacedModel
from modelreg.shared.adapters.mongo.cluster_store import candidate
from modelreg.shared.cluster_health import (
    is_unreachable,
    last_served_at,
    needs_unreachable_event,
    newest_reports,
    seen_at,
    stray_applications,
    unreachable_event,
)
from modelreg.shared.contracts import (
    HEALTH_REPORT_DECODER,
    ClusterHealthReport,
    InvalidMessage,
    ModelKey,
)
from modelreg.shared.deployment_rules import ObservedDeployment
from modelreg.shared.documents import ClusterRecord, utc_now
from modelreg.shared.placement import PlacementRequest, choose_cluster
from modelreg.shared.retry import RetryPolicy, Stopping
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.worker.clusters")


class ClusterHealthStore(Protocol):
    """What the cluster side of the worker needs (`shared.adapters.mongo.ClusterStore`)."""

    async def all(self) -> list[ClusterRecord]: ...

    async def apply_report(self, report: ClusterHealthReport, seen_at: datetime) -> bool: ...

    async def mark_unreachable(self, name: str, last_seen_at: datetime) -> bool: ...

    async def mark_reachable(self, name: str) -> bool: ...

    async def models_living_on(self, name: str) -> list[PlacedModel]: ...

    async def load_placements(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]: ...

    async def retarget(
        self, key: ModelKey, from_cluster: str | None, to_cluster: str, now: datetime
    ) -> bool: ...


def decode_report(key: bytes | None, value: bytes | None) -> ClusterHealthReport:
    """One record of the health topic, keyed by its cluster's name, or InvalidMessage saying why not."""
    if value is None:
        raise InvalidMessage("empty_value", "record has no value")
    try:
        report = HEALTH_REPORT_DECODER.decode(value)
    except msgspec.ValidationError as exc:
        raise InvalidMessage("invalid_report", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidMessage("undecodable", str(exc)) from None
    if key != report.kafka_key():
        shown = key.decode("utf-8", "replace")[:300] if key is not None else None
        raise InvalidMessage("key_mismatch", f"record key {shown!r} is not {report.cluster!r}")
    return report


class ClusterWatch:
    """Applies health reports and checks for lost clusters; publishes what follows from them."""

    def __init__(
        self,
        settings: Settings,
        store: ClusterHealthStore,
        publisher: Publisher,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.clock = clock

    async def apply_reports(self, reports: Sequence[ClusterHealthReport]) -> int:
        """Store each cluster's newest report; undeploy what they list that is wanted nowhere."""
        now = self.clock()
        stored = 0
        for report in newest_reports(reports):
            if not await self.store.apply_report(report, seen_at(report, now)):
                continue  # older than the stored one, or from a cluster nobody registered
            stored += 1
            metrics.HEALTH_REPORTS_APPLIED.inc()
            if report.serve_up and await self.store.mark_reachable(report.cluster):
                # Back after being lost: its models carry our "unreachable" event, possibly applied after the
                # bridge's own re-announcement; a resync makes the bridge announce the truth again.
                log.warning("cluster reachable again", cluster=report.cluster)
                await self._resync_models_of(report.cluster, now)
            keys = [ModelKey(a.namespace_id, a.model_id) for a in report.applications]
            strays = stray_applications(
                report.cluster, report.applications, await self.store.load_placements(keys)
            )
            for key in strays:
                await self.publisher.publish(
                    self.settings.commands_topic, undeploy_command(key, report.cluster, now)
                )
                metrics.COMMANDS_SENT.labels(reason="stray_application").inc()
                log.info("undeploy sent for a stray application", model=str(key), cluster=report.cluster)
        return stored

    async def check(self) -> list[str]:
        """One loss check; returns the clusters found unreachable.

        Idempotent: the unreachable events are derived from the stored state (a duplicate is stale), the
        failover retarget is a compare-and-set, and the cluster is flagged only after both were sent, so a
        crash in between repeats them at the next check.
        """
        now = self.clock()
        timeout_s = self.settings.cluster_unreachable_after_s
        clusters = await self.store.all()
        lost = [
            c
            for c in clusters
            if is_unreachable(last_served_at(c.last_seen_at, c.last_up_at), timeout_s, now)
        ]
        for cluster in lost:
            for placed in await self.store.models_living_on(cluster.name):
                if needs_unreachable_event(placed.observed, cluster.name, timeout_s, now):
                    event = unreachable_event(placed.key, placed.observed, cluster.name, now)
                    await self.publisher.publish(self.settings.events_topic, event)
                    metrics.UNREACHABLE_EVENTS.inc()
                if placed.failover:
                    await self._fail_over(placed, cluster, clusters, {c.name for c in lost}, now)
            if not cluster.unreachable and cluster.last_seen_at is not None:
                if await self.store.mark_unreachable(cluster.name, cluster.last_seen_at):
                    log.warning(
                        "cluster unreachable", cluster=cluster.name, last_seen_at=str(cluster.last_seen_at)
                    )
                else:
                    # A report arrived after this check read the cluster: it may be back already, and the
                    # unreachable events just sent would then outlive the bridge's re-announcement.
                    await self._resync_models_of(cluster.name, now)
        return [c.name for c in lost]

    async def _resync_models_of(self, cluster: str, now: datetime) -> None:
        for placed in await self.store.models_living_on(cluster):
            await self.publisher.publish(
                self.settings.commands_topic, resync_command(placed.key, cluster, now)
            )
            metrics.COMMANDS_SENT.labels(reason="cluster_back").inc()

    async def _fail_over(
        self,
        placed: PlacedModel,
        lost_cluster: ClusterRecord,
        clusters: list[ClusterRecord],
        all_lost: set[str],
        now: datetime,
    ) -> None:
        observed, lost = placed.observed, lost_cluster.name
        if (observed.cluster or lost) != lost:
            return  # already moved
        if observed.desired_cluster not in (None, lost):
            if not lost_cluster.unreachable:
                # Already asked elsewhere, and this cluster's loss not handled to the end: an earlier check
                # may have stopped between its retarget and the deploy. Sent again (commands are
                # at-least-once); once the cluster is flagged, the deploy was sent.
                await self._send_deploy(placed.key, observed.desired_cluster, lost, now)
            return
        choice = choose_cluster(
            [candidate(c) for c in clusters], PlacementRequest(), placed.needs, exclude=all_lost
        )
        if choice.cluster is None:
            log.warning(
                "no cluster to fail over to", model=str(placed.key), cluster=lost, reasons=choice.reasons
            )
            return
        if await self.store.retarget(placed.key, observed.desired_cluster, choice.cluster, now):
            await self._send_deploy(placed.key, choice.cluster, lost, now)

    async def _send_deploy(self, key: ModelKey, to: str, lost: str, now: datetime) -> None:
        await self.publisher.publish(self.settings.commands_topic, deploy_command(key, to, now))
        metrics.COMMANDS_SENT.labels(reason="failover").inc()
        log.warning("failing over", model=str(key), lost=lost, to=to)

    async def run_checks(self, stop: asyncio.Event, interval_s: float) -> None:
        """Check every `interval_s` until `stop`; a failed check is logged and tried again next time."""
        while not stop.is_set():
            try:
                await self.check()
            except RETRYABLE as exc:
                log.warning("cluster check failed; trying again", error=repr(exc)[:300])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)


class ClusterHealthConsumer(DeploymentEventConsumer):
    """The health topic's loop; it shares the event consumer's dead-lettering."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        watch: ClusterWatch,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.watch = watch

    async def run(self, stop: asyncio.Event) -> None:
        retry, loop = self.consumer_loop(stop)
        with contextlib.suppress(Stopping):
            await loop.run(functools.partial(self.process_reports, retry=retry), self.reports_committed)

    async def process_reports(self, batch: Batch, retry: RetryPolicy) -> int:
        records: list[ConsumerRecord] = [r for partition_records in batch.values() for r in partition_records]
        reports: list[ClusterHealthReport] = []
        rejects: list[DeadLetter] = []
        for record in records:
            try:
                reports.append(decode_report(record.key, record.value))
            except InvalidMessage as exc:
                rejects.append(DeadLetter(record, exc.reason, exc.detail))
        await retry.run("apply_reports", lambda: self.watch.apply_reports(reports), RETRYABLE)
        if rejects:
            await retry.run("dead_letter", lambda: self._dead_letter(rejects), RETRYABLE)
        return len(rejects)

    def reports_committed(self, batch: Batch, offsets: Offsets, dead_lettered: int) -> None:
        log.debug(
            "health reports applied", records=sum(len(r) for r in batch.values()), dead_lettered=dead_lettered
        )
