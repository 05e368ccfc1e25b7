"""Which bridge carries out a command: one bridge per named Ray cluster (`modelreg bridge --cluster NAME`)."""

from __future__ import annotations

from typing import NamedTuple

from modelreg.shared.contracts import DeploymentCommand, DeploymentEvent

# Commands and events without a cluster belong to this one (single-cluster installs, `modelreg dev`).
DEFAULT_CLUSTER = "local"


def command_cluster(command: DeploymentCommand) -> str:
    return command.cluster or DEFAULT_CLUSTER


def event_cluster(event: DeploymentEvent) -> str:
    return event.cluster or DEFAULT_CLUSTER


def is_for_cluster(command: DeploymentCommand, cluster: str) -> bool:
    """True when the bridge of `cluster` should carry `command` out; every other bridge skips it."""
    return command_cluster(command) == cluster


class ObservedPlacement(NamedTuple):
    """Where the registry shows a model on Ray Serve: the cluster it lives on (`cluster`, recorded by the
    worker), the dashboard URL of its deployment info, and the cluster it is asked on (`desired_cluster`)."""

    cluster: str | None = None
    ray_cluster_url: str | None = None
    desired_cluster: str | None = None
