"""What Ray Serve's status means for the registry. Pure functions: no Ray, no Kafka.

Ray Serve publishes no events, so the bridge polls its applications' status, turns each of its applications
into an `AppObservation`, and compares it with what it last reported for that model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

import msgspec

from modelreg.shared.cluster_routing import DEFAULT_CLUSTER, ObservedPlacement
from modelreg.shared.contracts import CommandType, EventType

# ApplicationStatus values of Ray Serve (ray.serve.schema.ApplicationStatus).
EVENT_FOR_APP_STATUS: dict[str, EventType] = {
    "NOT_STARTED": EventType.STARTED,
    "DEPLOYING": EventType.STARTED,
    "RUNNING": EventType.READY,
    "UNHEALTHY": EventType.UNHEALTHY,
    "DEPLOY_FAILED": EventType.FAILED,
    "DELETING": EventType.DELETING,
}

MAX_MESSAGE = 4000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The last line of a Python traceback: "SomeError: what happened".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


class DeploymentObservation(msgspec.Struct, frozen=True):
    status: str
    message: str = ""


class AppObservation(msgspec.Struct, frozen=True):
    """One Serve application as the dashboard's `GET /api/serve/applications/` showed it."""

    status: str
    message: str = ""
    deployments: dict[str, DeploymentObservation] = msgspec.field(default_factory=dict)

    @property
    def deployment_name(self) -> str | None:
        return next(iter(sorted(self.deployments)), None)


class Reported(msgspec.Struct, frozen=True):
    """What the bridge last published for a model, and whether Serve had an application for it then."""

    event_type: EventType
    app_present: bool
    deployment_name: str | None = None


def event_for_status(status: str) -> EventType:
    try:
        return EVENT_FOR_APP_STATUS[status]
    except KeyError:
        raise ValueError(f"unknown Ray Serve application status {status!r}") from None


def transition(last: Reported | None, app: AppObservation | None) -> EventType | None:
    """The event to publish now, or None when nothing changed since the last report."""
    if app is None:
        if last is not None and last.app_present and last.event_type is not EventType.DELETED:
            return EventType.DELETED
        return None
    target = event_for_status(app.status)
    if last is None or last.event_type is not target or last.deployment_name != app.deployment_name:
        return target
    return None


def _clean(text: str) -> str:
    return _ANSI.sub("", text).strip()


def _first_sentence(text: str) -> str:
    head = text.split("\n", 1)[0]
    match = re.match(r"(.+?\.)(\s|$)", head)
    return match.group(1) if match else head


def failure_reason(app: AppObservation) -> str:
    """A short reason for a failed or unhealthy application, built from Ray's own messages.

    Ray reports a failed constructor as a whole traceback; the exception line at its end says why.
    """
    parts: list[str] = []
    for name, deployment in sorted(app.deployments.items()):
        message = _clean(deployment.message)
        if not message:
            continue
        exception = next(
            (m for line in reversed(message.splitlines()) if (m := _EXCEPTION_LINE.match(line.strip()))), None
        )
        summary = _first_sentence(message)
        if exception is not None:
            parts.append(f"{exception.group(1)}: {exception.group(2)} (deployment {name}: {summary})")
        else:
            parts.append(f"deployment {name}: {message}")
    if not parts:
        parts.append(_clean(app.message) or f"application is {app.status}")
    reason = "; ".join(parts)
    return reason if len(reason) <= MAX_MESSAGE else reason[: MAX_MESSAGE - 1] + "…"


def status_message(app: AppObservation) -> str | None:
    """The event message for an observed application."""
    event_type = event_for_status(app.status)
    if event_type in (EventType.FAILED, EventType.UNHEALTHY):
        return failure_reason(app)
    if event_type is EventType.READY:
        return None
    return _clean(app.message)[:MAX_MESSAGE] or None


def later_command_wins(earlier: CommandType, later: CommandType) -> bool:
    """Of two commands for one model in a batch, whether the later one replaces the earlier.

    Deploy and undeploy say what the model should be: the later wins. A resync only re-announces the state,
    which a deploy or undeploy publishes anyway, so it never replaces one.
    """
    return later is not CommandType.RESYNC or earlier is CommandType.RESYNC


K = TypeVar("K")


def observed_on_this_cluster(placement: ObservedPlacement, cluster: str, cluster_url: str | None) -> bool:
    """Whether a model the registry shows on Serve is this bridge's to reconcile.

    The model's `cluster` (the placement the worker recorded from its events) decides. Documents from before
    placements were recorded fall back to their deployment info's `ray_cluster_url` (this bridge's dashboard
    URL); the default cluster (`local`) also takes those with a cluster URL from before dashboards (a GCS
    `host:port`), as single-cluster installs had only it. A model that lives nowhere yet belongs to the
    cluster it is asked on (`desired_cluster`), else to the default cluster."""
    if placement.cluster is not None:
        return placement.cluster == cluster
    url = placement.ray_cluster_url
    if url is not None:
        if url == cluster_url:
            return True
        return cluster == DEFAULT_CLUSTER and not url.startswith(("http://", "https://"))
    return (placement.desired_cluster or DEFAULT_CLUSTER) == cluster


def models_missing_from_serve(
    live_in_registry: Iterable[K], with_application: Iterable[object], busy: Iterable[object] = ()
) -> list[K]:
    """Models the registry shows on Ray Serve for which Serve has no application (and no command in hand)."""
    present = set(with_application) | set(busy)
    return [key for key in live_in_registry if key not in present]
