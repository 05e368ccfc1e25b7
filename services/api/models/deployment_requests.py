"""Deploy and undeploy requests: record the wish (compare-and-set), then send the command to the bridge."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from modelreg.services.api.clusters.placement import place
from modelreg.services.api.clusters.ports import ClusterDirectory, NoClusters
from modelreg.services.api.domain_errors import (
    BrokerUnavailable,
    ConcurrentRequest,
    ModelNotFound,
    TransitionInProgress,
)
from modelreg.services.api.models.ports import CommandSender, ModelRepository
from modelreg.services.api.models.schemas import DeploymentRequestResponse, DeployRequest, ModelDeployResponse
from modelreg.services.api.models.views import current_status
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.adapters.kafka import CommandNotPublishedError
from modelreg.shared.audit import AuditAction, current_actor
from modelreg.shared.audit_rules import request_key_prefix
from modelreg.shared.contracts import CommandType, DeploymentCommand, DeploymentStatus, ModelKey
from modelreg.shared.conversions import aware_utc, observed_from_details
from modelreg.shared.deployment_rules import (
    DesiredState,
    RequestOutcome,
    decide_request,
    effective_status,
    is_observed_on_serve,
)
from modelreg.shared.documents import ModelDetails
from modelreg.shared.placement import Placement, PlacementRequest

# Compare-and-set rounds for a deployment request before answering 409 (other requests keep winning).
MAX_REQUEST_ROUNDS = 5
# How often a deploy with `Prefer: wait=N` reads the model again while it is pending.
DEPLOY_WAIT_POLL_S = 0.25


@dataclass(frozen=True)
class DeployAnswer:
    """The deploy route's body, and the wait applied (seconds) when the client asked for one."""

    body: ModelDeployResponse
    applied_wait: int | None


def deploy_message(
    status: DeploymentStatus, cached: bool, waited: bool, reason: str | None, moving: bool = False
) -> str:
    """Mixpeek's `message` for a deploy answer."""
    if cached:
        return "Model already deployed"
    if moving and status is DeploymentStatus.DEPLOYED:
        return "Move requested; the model keeps serving where it is until the new cluster reports it ready"
    if status is DeploymentStatus.PENDING:
        if waited:
            return "Deployment requested; still pending when the wait ended"
        return "Deployment requested; pending until the deployment bridge reports it"
    if status is DeploymentStatus.DEPLOYED:
        return "Model deployed"
    if status is DeploymentStatus.FAILED:
        return f"Deployment failed: {reason}" if reason else "Deployment failed"
    return f"Deployment requested; the model is now {status.value}"


async def send_command(
    publisher: CommandSender,
    key: ModelKey,
    command_type: CommandType,
    now: datetime,
    cluster: str | None = None,
) -> DeploymentCommand:
    """Publish a new command for the model (to `cluster`'s bridge; None: the default one);
    BrokerUnavailable when Kafka did not take it."""
    command = DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        requested_at=now,
        cluster=cluster,
    )
    try:
        await publisher.publish(command)
    except CommandNotPublishedError:
        raise BrokerUnavailable() from None
    return command


class DeploymentRequests:
    def __init__(
        self,
        store: ModelRepository,
        publisher: CommandSender,
        clock: Callable[[], datetime],
        *,
        max_wait_s: int = 0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clusters: ClusterDirectory | None = None,
        audit: Audit = NOT_AUDITED,
    ) -> None:
        self.clusters: ClusterDirectory = clusters or NoClusters()
        self.audit = audit
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.monotonic = monotonic

    async def deploy(
        self, key: ModelKey, wait_s: int | None = None, wish: DeployRequest | None = None
    ) -> DeployAnswer:
        """Request a deployment; with `wait_s` (capped by the setting), wait that long for its outcome.

        `wish` says where (a cluster by name or labels, see `services/api/clusters/placement.py`) and
        whether to fail over. The wait reads the store until the status is no longer `pending` (deployed,
        failed, unhealthy, or changed by another request); it never talks to Ray.
        """
        wish = wish or DeployRequest()
        placement = PlacementRequest(cluster=wish.cluster, labels=wish.labels)
        decided, sent = await self.request(key, DesiredState.DEPLOYED, placement, wish.failover)
        applied = None if wait_s is None or self.max_wait_s <= 0 else min(wait_s, self.max_wait_s)
        status = DeploymentStatus(decided.deployment_status)
        reason = None
        if sent and applied and status is DeploymentStatus.PENDING:
            status, reason = await self._wait_outcome(key, applied)
        cached = not sent and status is DeploymentStatus.DEPLOYED
        # Sent although the model was deployed: it is moving to another cluster.
        moving = sent and decided.deployment_status == str(DeploymentStatus.DEPLOYED)
        body = ModelDeployResponse(
            success=status is not DeploymentStatus.FAILED,
            model_id=key.model_id,
            namespace_id=key.namespace_id,
            deployment_status=str(status),
            cached=cached,
            message=deploy_message(status, cached, bool(applied), reason, moving),
            command_id=decided.command_id,
        )
        return DeployAnswer(body, applied)

    async def _wait_outcome(self, key: ModelKey, wait_s: int) -> tuple[DeploymentStatus, str | None]:
        deadline = self.monotonic() + wait_s
        status, reason = DeploymentStatus.PENDING, None
        while (remaining := deadline - self.monotonic()) > 0:
            await self.sleep(min(DEPLOY_WAIT_POLL_S, remaining))
            details = await self.store.get_details(key)
            if details is None:
                raise ModelNotFound(key)
            status, reason = current_status(details), details.deployment_message
            if status is not DeploymentStatus.PENDING:
                break
        return status, reason

    async def request(
        self,
        key: ModelKey,
        desired: DesiredState,
        placement: PlacementRequest | None = None,
        failover: bool | None = None,
    ) -> tuple[DeploymentRequestResponse, bool]:
        """Record the wish and send the command; returns the answer and whether a command was sent.

        A deploy goes to the cluster `place` picks; an undeploy to the model's placement and, while it is
        moving, to the cluster it was moving to.
        """
        action = AuditAction.MODEL_DEPLOY if desired is DesiredState.DEPLOYED else AuditAction.MODEL_UNDEPLOY
        async with self.audit.recording(action, [key.namespace_id], model_id=key.model_id) as note:
            answer, sent = await self._request(key, desired, placement, failover)
            note.details.update(
                command_id=answer.command_id, sent=sent, deployment_status=answer.deployment_status
            )
            return answer, sent

    async def _request(
        self,
        key: ModelKey,
        desired: DesiredState,
        placement: PlacementRequest | None,
        failover: bool | None,
    ) -> tuple[DeploymentRequestResponse, bool]:
        records = await self.clusters.all() if desired is DesiredState.DEPLOYED else []
        for _ in range(MAX_REQUEST_ROUNDS):
            details = await self.store.get_details(key)
            if details is None:
                raise ModelNotFound(key)
            status = current_status(details)
            wanted = None
            if desired is DesiredState.DEPLOYED:
                wanted = place(details, placement or PlacementRequest(), records)
            placed = details.cluster if is_observed_on_serve(observed_from_details(details)) else None
            decision = decide_request(status, desired, placed_on=placed, wanted_on=wanted)
            if decision.outcome is RequestOutcome.UNCHANGED:
                return DeploymentRequestResponse(model_id=key.model_id, deployment_status=str(status)), False
            if decision.outcome is RequestOutcome.REFUSED:
                raise TransitionInProgress(str(status), decision.reason)
            previous_at = aware_utc(details.desired_at)
            now = self.clock()
            target = (
                Placement(cluster=wanted, failover=failover) if desired is DesiredState.DEPLOYED else None
            )
            recorded = await self.store.set_desired(
                key,
                desired,
                now,
                expected_desired_at=previous_at,
                now=now,
                placement=target,
                desired_by=request_key_prefix(current_actor.get()),
            )
            if not recorded:
                continue  # another request changed the model meanwhile: decide again on fresh data
            try:
                if desired is DesiredState.DEPLOYED:
                    command = await send_command(self.publisher, key, CommandType.DEPLOY, now, wanted)
                else:
                    command = await self._undeploy_everywhere(key, details, now)
            except BrokerUnavailable:
                # Take the wish back, unless another request replaced it meanwhile.
                restored = Placement(
                    cluster=details.desired_cluster, failover=None if failover is None else details.failover
                )
                await self.store.set_desired(
                    key,
                    details.desired_state,
                    previous_at,
                    expected_desired_at=now,
                    now=self.clock(),
                    placement=restored if target is not None else None,
                    desired_by=details.desired_by,
                )
                raise
            after = effective_status(observed_from_details(details), desired, now)
            response = DeploymentRequestResponse(
                model_id=key.model_id, deployment_status=str(after), command_id=str(command.command_id)
            )
            return response, True
        raise ConcurrentRequest()

    async def _undeploy_everywhere(
        self, key: ModelKey, details: ModelDetails, now: datetime
    ) -> DeploymentCommand:
        """Undeploy from the placement and from the cluster a move was heading to; returns the first."""
        clusters = [details.cluster]
        if details.desired_cluster is not None and details.desired_cluster != details.cluster:
            clusters.append(details.desired_cluster)
        commands = [await send_command(self.publisher, key, CommandType.UNDEPLOY, now, c) for c in clusters]
        return commands[0]
