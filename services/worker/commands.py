"""The commands the worker sends on its own: undeploys that retire a placement, deploys of a failover,
resyncs of a cluster that came back."""

from __future__ import annotations

import uuid
from datetime import datetime

from modelreg.shared.contracts import CommandType, DeploymentCommand, ModelKey


def cluster_command(
    command_type: CommandType, key: ModelKey, cluster: str, now: datetime
) -> DeploymentCommand:
    return DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        requested_at=now,
        cluster=cluster,
    )


def undeploy_command(key: ModelKey, cluster: str, now: datetime) -> DeploymentCommand:
    """Remove the model's application from `cluster` (only that cluster's bridge carries it out)."""
    return cluster_command(CommandType.UNDEPLOY, key, cluster, now)


def deploy_command(key: ModelKey, cluster: str, now: datetime) -> DeploymentCommand:
    return cluster_command(CommandType.DEPLOY, key, cluster, now)


def resync_command(key: ModelKey, cluster: str, now: datetime) -> DeploymentCommand:
    """Have `cluster`'s bridge re-announce what its Serve really runs for the model (fresh sequences)."""
    return cluster_command(CommandType.RESYNC, key, cluster, now)
