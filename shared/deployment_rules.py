"""The decision rules, pure: what an event does to a model, the sequence guard, the status machine.

The worker, the API and the tests all import these functions; nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import msgspec

from shared.contracts import (
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
    """The part of a model that only deployment events change."""

    deployed: bool = False
    deployment_info: ModelDeploymentInfo | None = None
    status: DeploymentStatus = DeploymentStatus.NOT_DEPLOYED
    message: str | None = None
    last_event_sequence: int | None = None
    observed_at: datetime | None = None


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


def apply_event(current: ObservedDeployment, event: DeploymentEvent) -> ObservedDeployment | None:
    """The model's observed deployment after `event`, or None when the guard rejects it as not newer."""
    if not is_newer(event.sequence, current.last_event_sequence):
        return None
    if event.event_type in CLEARS_INFO:
        info = None
    elif event.event_type is EventType.READY:
        merged = _merged_info(current.deployment_info, event)
        assert merged is not None, "a ready event carries endpoint and base_image (DeploymentEvent)"
        info = msgspec.structs.replace(merged, deployed_at=event.occurred_at)
    else:
        info = _merged_info(current.deployment_info, event)
    return ObservedDeployment(
        deployed=event.event_type is EventType.READY,
        deployment_info=info,
        status=STATUS_AFTER[event.event_type],
        message=event.message,
        last_event_sequence=event.sequence,
        observed_at=event.occurred_at,
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


def decide_request(current: DeploymentStatus, requested: DesiredState) -> RequestDecision:
    """The deploy/undeploy decision for a model whose reported (effective) status is `current`.

    Deploying while an undeploy is still deleting the Serve application is refused: the application name
    is the same and the new deployment could be torn down by the deletion in flight. Undeploying while a
    deploy is pending is allowed: it is how a stuck deployment is cancelled, and commands for one model
    are ordered.
    """
    if requested is DesiredState.DEPLOYED:
        if current is DeploymentStatus.DEPLOYED:
            return RequestDecision(outcome=RequestOutcome.UNCHANGED)
        if current is DeploymentStatus.DELETING:
            return RequestDecision(outcome=RequestOutcome.REFUSED, reason="undeploy_in_progress")
        return RequestDecision(outcome=RequestOutcome.PUBLISH)
    if current is DeploymentStatus.NOT_DEPLOYED:
        return RequestDecision(outcome=RequestOutcome.UNCHANGED)
    return RequestDecision(outcome=RequestOutcome.PUBLISH)
