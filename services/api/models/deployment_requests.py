"""Deploy and undeploy requests: record the wish (compare-and-set), then send the command to the bridge."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from services.api.domain_errors import (
    BrokerUnavailable,
    ConcurrentRequest,
    ModelNotFound,
    TransitionInProgress,
)
from services.api.models.ports import CommandSender, ModelRepository
from services.api.models.schemas import DeploymentRequestResponse
from services.api.models.views import current_status
from shared.adapters.kafka import CommandNotPublishedError
from shared.contracts import CommandType, DeploymentCommand, ModelKey
from shared.conversions import aware_utc, observed_from_details
from shared.deployment_rules import DesiredState, RequestOutcome, decide_request, effective_status

# Compare-and-set rounds for a deployment request before answering 409 (other requests keep winning).
MAX_REQUEST_ROUNDS = 5
COMMAND_FOR = {DesiredState.DEPLOYED: CommandType.DEPLOY, DesiredState.NOT_DEPLOYED: CommandType.UNDEPLOY}


async def send_command(
    publisher: CommandSender, key: ModelKey, command_type: CommandType, now: datetime
) -> DeploymentCommand:
    """Publish a new command for the model; BrokerUnavailable when Kafka did not take it."""
    command = DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        requested_at=now,
    )
    try:
        await publisher.publish(command)
    except CommandNotPublishedError:
        raise BrokerUnavailable() from None
    return command


class DeploymentRequests:
    def __init__(
        self, store: ModelRepository, publisher: CommandSender, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock

    async def request(self, key: ModelKey, desired: DesiredState) -> tuple[DeploymentRequestResponse, bool]:
        """Record the wish and send the command; returns the answer and whether a command was sent."""
        for _ in range(MAX_REQUEST_ROUNDS):
            details = await self.store.get_details(key)
            if details is None:
                raise ModelNotFound(key)
            status = current_status(details)
            decision = decide_request(status, desired)
            if decision.outcome is RequestOutcome.UNCHANGED:
                return DeploymentRequestResponse(model_id=key.model_id, deployment_status=str(status)), False
            if decision.outcome is RequestOutcome.REFUSED:
                raise TransitionInProgress(str(status), decision.reason)
            previous_at = aware_utc(details.desired_at)
            now = self.clock()
            recorded = await self.store.set_desired(
                key, desired, now, expected_desired_at=previous_at, now=now
            )
            if not recorded:
                continue  # another request changed the model meanwhile: decide again on fresh data
            try:
                command = await send_command(self.publisher, key, COMMAND_FOR[desired], now)
            except BrokerUnavailable:
                # Take the wish back, unless another request replaced it meanwhile.
                await self.store.set_desired(
                    key, details.desired_state, previous_at, expected_desired_at=now, now=self.clock()
                )
                raise
            after = effective_status(observed_from_details(details), desired, now)
            response = DeploymentRequestResponse(
                model_id=key.model_id, deployment_status=str(after), command_id=str(command.command_id)
            )
            return response, True
        raise ConcurrentRequest()
