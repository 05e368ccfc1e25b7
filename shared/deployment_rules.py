"""The decision rules, pure: what an event does to a model, the sequence guard, the status machine.

The worker, the API and the tests all import these functions; nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import msgspec

from modelreg.shared.cluster_routing import event_cluster
from modelreg.shared.contracts import (
    DeploymentEvent,
    DeploymentStatus,
    EventType,
    ModelDeploymentInfo,
    ModelKey,
)


class DesiredState(enum.StrEnum):
    """What a user asked for through the API; the worker never writes it."""

    DEPLOYED = "deployed"
    NOT_DEPLOYED = "not_deployed"


class ObservedDeployment(msgspec.Struct, kw_only=True, frozen=True):
    """The part of a model that only deployment events change, plus the placement the events are judged by.

    The observed fields describe the model's placement `cluster`: the named Ray cluster whose events they
    come from. Each cluster's events are ordered by their own sequence guard (`cluster_sequences`);
    `last_event_sequence` is the model's write token, which grows with every applied event (the
    compare-and-set of the worker's write filters on it). `desired_cluster` is read, never written, by the
    rules: the cluster the API (or the worker's failover) asked for.
    """

    deployed: bool = False
    deployment_info: ModelDeploymentInfo | None = None
    status: DeploymentStatus = DeploymentStatus.NOT_DEPLOYED
    message: str | None = None
    last_event_sequence: int | None = None
    observed_at: datetime | None = None
    cluster: str | None = None
    cluster_sequences: dict[str, int] = msgspec.field(default_factory=dict)
    desired_cluster: str | None = None


STATUS_AFTER: dict[EventType, DeploymentStatus] = {
    EventType.STARTED: DeploymentStatus.PENDING,
    EventType.READY: DeploymentStatus.DEPLOYED,
    EventType.UNHEALTHY: DeploymentStatus.UNHEALTHY,
    EventType.FAILED: DeploymentStatus.FAILED,
    EventType.DELETING: DeploymentStatus.DELETING,
    EventType.DELETED: DeploymentStatus.NOT_DEPLOYED,
}

# Events after which the model no longer has a deployment to describe.
CLEARS_INFO = frozenset({EventType.FAILED, EventType.DELETED})


# Statuses that mean a Serve application exists or is being made or removed.
OBSERVED_ON_SERVE = frozenset(
    {
        DeploymentStatus.PENDING,
        DeploymentStatus.DEPLOYED,
        DeploymentStatus.UNHEALTHY,
        DeploymentStatus.DELETING,
    }
)


def is_observed_on_serve(observed: ObservedDeployment) -> bool:
    """Whether the observed state says Ray Serve has (or is making, or removing) an application for the model.

    `deployed` counts on its own: a document written with only the seed's fields has no status.
    """
    return observed.deployed or observed.status in OBSERVED_ON_SERVE


def status_for_legacy(deployed: bool) -> DeploymentStatus:
    """Status of a document written without bookkeeping fields (only the seed's `deployed`)."""
    return DeploymentStatus.DEPLOYED if deployed else DeploymentStatus.NOT_DEPLOYED


def is_newer(sequence: int, last_applied_sequence: int | None) -> bool:
    """The sequence guard: only an event newer than the last applied one may change a model."""
    return last_applied_sequence is None or sequence > last_applied_sequence


def _merged_info(current: ModelDeploymentInfo | None, event: DeploymentEvent) -> ModelDeploymentInfo | None:
    """Fill the current info with what the event says; keep what it leaves out."""
    endpoint = event.endpoint or (current.endpoint if current else None)
    base_image = event.base_image or (current.base_image if current else None)
    if not endpoint or not base_image:
        return None
    return ModelDeploymentInfo(
        endpoint=endpoint,
        base_image=base_image,
        ray_cluster_url=event.ray_cluster_url or (current.ray_cluster_url if current else None),
        ray_deployment_name=event.ray_deployment_name or (current.ray_deployment_name if current else None),
        deployed_at=current.deployed_at if current else None,
    )


def guard_sequence(current: ObservedDeployment, cluster: str) -> int | None:
    """The last applied sequence of `cluster`'s events for the model.

    A model stored before clusters had names (or just resynced) has no per-cluster sequences: its one
    sequence guards every cluster's events until each has one of its own.
    """
    if cluster in current.cluster_sequences:
        return current.cluster_sequences[cluster]
    return None if current.cluster_sequences else current.last_event_sequence


def write_token(current: ObservedDeployment, sequence: int) -> int:
    """The model's `last_event_sequence` after applying an event: its sequence, unless that would not grow.

    With one cluster the guard already made it grow; another cluster's clock may lag behind.
    """
    if current.last_event_sequence is None or sequence > current.last_event_sequence:
        return sequence
    return current.last_event_sequence + 1


def lives_elsewhere(current: ObservedDeployment, cluster: str) -> bool:
    """Whether the model has an application (or one under way) on a placement other than `cluster`."""
    return current.cluster is not None and current.cluster != cluster and is_observed_on_serve(current)


def apply_event(current: ObservedDeployment, event: DeploymentEvent) -> ObservedDeployment | None:
    """The model's observed deployment after `event`, or None when the guard rejects it as not newer.

    An event of the model's placement (or of any cluster while the model lives nowhere) changes the model.
    While the model lives on its placement, another cluster's events only go into the history (their
    guard moves on), except a `ready` of the desired cluster: that is a move completing, and the model
    switches to it. So a late `deleting`/`deleted`/`failed` of the cluster a model moved away from never
    makes it look undeployed.
    """
    cluster = event_cluster(event)
    if not is_newer(event.sequence, guard_sequence(current, cluster)):
        return None
    sequences = {**current.cluster_sequences, cluster: event.sequence}
    token = write_token(current, event.sequence)
    switching = event.event_type is EventType.READY and cluster == current.desired_cluster
    if lives_elsewhere(current, cluster) and not switching:
        return msgspec.structs.replace(current, cluster_sequences=sequences, last_event_sequence=token)
    same_placement = current.cluster is None or current.cluster == cluster
    previous_info = current.deployment_info if same_placement else None
    if event.event_type in CLEARS_INFO:
        info = None
    elif event.event_type is EventType.READY:
        merged = _merged_info(previous_info, event)
        assert merged is not None, "a ready event carries endpoint and base_image (DeploymentEvent)"
        info = msgspec.structs.replace(merged, deployed_at=event.occurred_at)
    else:
        info = _merged_info(previous_info, event)
    return ObservedDeployment(
        deployed=event.event_type is EventType.READY,
        deployment_info=info,
        status=STATUS_AFTER[event.event_type],
        message=event.message,
        last_event_sequence=token,
        observed_at=event.occurred_at,
        cluster=cluster,
        cluster_sequences=sequences,
        desired_cluster=current.desired_cluster,
    )


def apply_events(
    current: ObservedDeployment, events: Iterable[DeploymentEvent]
) -> tuple[ObservedDeployment, list[DeploymentEvent]]:
    """Fold one model's events in sequence order; returns the final state and the events that applied."""
    state = current
    applied: list[DeploymentEvent] = []
    for event in sorted(events, key=lambda e: e.sequence):
        after = apply_event(state, event)
        if after is not None:
            state = after
            applied.append(event)
    return state, applied


class ObservedChange(msgspec.Struct, frozen=True):
    """One model's conditional write: `after` replaces `before`, recording the events that led there."""

    key: ModelKey
    before: ObservedDeployment
    after: ObservedDeployment
    applied: Sequence[DeploymentEvent]


def clusters_to_undeploy(change: ObservedChange) -> set[str]:
    """Clusters the worker sends an undeploy command to after writing `change`.

    The placement a model switched away from (a move completed), and any cluster that announced the model
    ready while it lives elsewhere and is not wanted there (e.g. a lost cluster that came back after a
    failover). Sent at least once: a cluster's health report listing a stray application repeats it
    (`shared/cluster_health.py`).
    """
    after = change.after
    if not is_observed_on_serve(after):
        return set()
    candidates = {event_cluster(e) for e in change.applied if e.event_type is EventType.READY}
    if change.before.cluster is not None and is_observed_on_serve(change.before):
        candidates.add(change.before.cluster)
    return {c for c in candidates if c != after.cluster and c != after.desired_cluster}


def lost_writes(
    changes: Iterable[ObservedChange], stored_sequences: Mapping[ModelKey, int | None]
) -> set[ModelKey]:
    """Changes whose compare-and-set lost to another writer, judged from the sequences stored afterwards.

    A change took when its model now carries the sequence it wrote. A model that is gone was deleted:
    there is nothing left to write, so it is no conflict.
    """
    return {
        change.key
        for change in changes
        if change.key in stored_sequences and stored_sequences[change.key] != change.after.last_event_sequence
    }


def group_by_model(events: Iterable[DeploymentEvent]) -> dict[ModelKey, list[DeploymentEvent]]:
    """Coalesce a batch: each model's events together, so each model gets one write."""
    grouped: dict[ModelKey, list[DeploymentEvent]] = defaultdict(list)
    for event in events:
        grouped[event.key].append(event)
    return dict(grouped)


def effective_status(
    observed: ObservedDeployment,
    desired: DesiredState | None = None,
    desired_at: datetime | None = None,
) -> DeploymentStatus:
    """What the API reports: the observed status, unless a newer request has not been observed yet."""
    if desired is None or desired_at is None:
        return observed.status
    if observed.observed_at is not None and observed.observed_at >= desired_at:
        return observed.status
    if desired is DesiredState.DEPLOYED:
        return DeploymentStatus.DEPLOYED if observed.deployed else DeploymentStatus.PENDING
    if observed.status is DeploymentStatus.NOT_DEPLOYED:
        return DeploymentStatus.NOT_DEPLOYED
    return DeploymentStatus.DELETING


class RequestOutcome(enum.StrEnum):
    """What the API does with a deploy or undeploy request."""

    PUBLISH = "publish"  # record the wish and send the command (again, if one is already on its way)
    UNCHANGED = "unchanged"  # the model is already where the request wants it: nothing to send
    REFUSED = "refused"  # the opposite transition is under way and would race the new one


class RequestDecision(msgspec.Struct, kw_only=True, frozen=True):
    outcome: RequestOutcome
    reason: str | None = None


def decide_request(
    current: DeploymentStatus,
    requested: DesiredState,
    *,
    placed_on: str | None = None,
    wanted_on: str | None = None,
) -> RequestDecision:
    """The deploy/undeploy decision for a model whose reported (effective) status is `current`.

    Deploying while an undeploy is still deleting the Serve application is refused: the application name
    is the same and the new deployment could be torn down by the deletion in flight. Undeploying while a
    deploy is pending is allowed: it is how a stuck deployment is cancelled, and commands for one model
    are ordered. A deploy to a cluster (`wanted_on`) other than the model's placement (`placed_on`) is a
    move: it is sent even when the model is deployed.
    """
    if requested is DesiredState.DEPLOYED:
        moving = wanted_on is not None and wanted_on != placed_on
        if current is DeploymentStatus.DEPLOYED and not moving:
            return RequestDecision(outcome=RequestOutcome.UNCHANGED)
        if current is DeploymentStatus.DELETING:
            return RequestDecision(outcome=RequestOutcome.REFUSED, reason="undeploy_in_progress")
        return RequestDecision(outcome=RequestOutcome.PUBLISH)
    if current is DeploymentStatus.NOT_DEPLOYED:
        return RequestDecision(outcome=RequestOutcome.UNCHANGED)
    return RequestDecision(outcome=RequestOutcome.PUBLISH)
