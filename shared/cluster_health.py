"""Cluster health, pure: when a cluster counts as lost, what the worker says about its models, and which
applications a cluster runs that nobody wants there (docs/clusters.md, "Cluster loss and failover").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from modelreg.shared.cluster_routing import DEFAULT_CLUSTER
from modelreg.shared.contracts import (
    ClusterHealthReport,
    DeploymentEvent,
    DeploymentStatus,
    EventType,
    ModelKey,
    ServeApplicationState,
)
from modelreg.shared.deployment_rules import ObservedDeployment, guard_sequence, is_observed_on_serve

# Namespace of the deterministic ids of the worker's "cluster unreachable" events: two workers that notice
# the same loss publish the same event, and the second copy is stale.
UNREACHABLE_EVENT_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4b8e-9a51-0c3f2d6b7e10")
# Serve application statuses that are on their way out: such an application needs no undeploy command.
LEAVING_STATUSES = frozenset({"DELETING"})


def is_unreachable(last_seen_at: datetime | None, timeout_s: float, now: datetime) -> bool:
    """A cluster is unreachable once its last report is older than the timeout; never seen is not lost."""
    return last_seen_at is not None and now - last_seen_at > timedelta(seconds=timeout_s)


def last_served_at(last_seen_at: datetime | None, last_up_at: datetime | None) -> datetime | None:
    """Since when a cluster counts as serving: its last report that said Serve is up. A bridge that keeps
    reporting a cluster that does not answer (Ray stopped, Serve down) does not keep it alive; a cluster never
    reported up (or stored before up-times were kept) falls back to its last report."""
    return last_up_at if last_up_at is not None else last_seen_at


def seen_at(report: ClusterHealthReport, now: datetime) -> datetime:
    """When the report counts as seen: its own time, never later than now (a fast clock cannot keep a
    silent cluster alive)."""
    return min(report.reported_at, now)


def unreachable_message(cluster: str) -> str:
    return f"cluster {cluster} unreachable"


def placed_on(observed: ObservedDeployment, cluster: str) -> bool:
    """Whether the model's placement is `cluster` (a model stored before clusters had names: the default)."""
    return (observed.cluster or DEFAULT_CLUSTER) == cluster


def needs_unreachable_event(
    observed: ObservedDeployment, cluster: str, timeout_s: float, now: datetime
) -> bool:
    """Models of a lost cluster that still look served (pending or deployed) turn unhealthy.

    Except a model whose state the cluster's bridge announced within the timeout: the cluster is back
    (its health report, on another topic, is just not applied yet), and an `unhealthy` event then would
    hide the announcement until the resync repeats it. An announcement dated after now (a fast clock)
    does not count.
    """
    if not placed_on(observed, cluster) or observed.status not in (
        DeploymentStatus.PENDING,
        DeploymentStatus.DEPLOYED,
    ):
        return False
    announced = observed.observed_at
    recently = announced is not None and announced <= now and not is_unreachable(announced, timeout_s, now)
    return not recently


def unreachable_event(
    key: ModelKey, observed: ObservedDeployment, cluster: str, now: datetime
) -> DeploymentEvent:
    """The `unhealthy` event the worker publishes for a model of a lost cluster.

    Its sequence is the smallest one newer than the last event of that cluster applied to the model, so
    any later true event of the cluster's bridge (its re-announcement when it comes back) still applies.
    Sequence and id are derived from the stored state: a duplicate (another worker, a retried check) is
    stale.
    """
    last = guard_sequence(observed, cluster)
    sequence = 0 if last is None else last + 1
    return DeploymentEvent(
        event_id=uuid.uuid5(UNREACHABLE_EVENT_NAMESPACE, f"{cluster}/{key}/{sequence}"),
        event_type=EventType.UNHEALTHY,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        sequence=sequence,
        occurred_at=now,
        message=unreachable_message(cluster),
        cluster=cluster,
    )


def is_stray(observed: ObservedDeployment, cluster: str) -> bool:
    """Whether an application of the model on `cluster` is wanted nowhere: neither the model's live
    placement nor the cluster it is asked on. Models without any placement (stored before clusters had
    names) are left alone."""
    if observed.cluster is None and observed.desired_cluster is None:
        return False
    if cluster == observed.desired_cluster:
        return False
    return not (observed.cluster == cluster and is_observed_on_serve(observed))


def stray_applications(
    cluster: str,
    applications: Iterable[ServeApplicationState],
    models: Mapping[ModelKey, ObservedDeployment],
) -> list[ModelKey]:
    """The models a cluster's report lists that it should not run (unknown models are left alone: their
    deletion undeploys them)."""
    strays = []
    for app in applications:
        key = ModelKey(app.namespace_id, app.model_id)
        if app.status in LEAVING_STATUSES or key not in models:
            continue
        if is_stray(models[key], cluster):
            strays.append(key)
    return strays


def newest_reports(reports: Iterable[ClusterHealthReport]) -> list[ClusterHealthReport]:
    """Each cluster's newest report of a batch (older ones change nothing once it is applied)."""
    newest: dict[str, ClusterHealthReport] = {}
    for report in reports:
        if report.cluster not in newest or report.sequence > newest[report.cluster].sequence:
            newest[report.cluster] = report
    return list(newest.values())
