"""PURE: which request caused a deployment event, for the `requested_by` of a model's history.

Events carry no command id, so the cause is read from the audit trail: an event is attributed to the latest
deploy or undeploy request of the model that sent a command at or before the event was applied, when the
event goes the request's way (started, ready, failed after a deploy; deleting, deleted after an undeploy).
Events no request explains (unhealthy, or going the other way) have no `requested_by`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from modelreg.shared.audit import AuditAction
from modelreg.shared.contracts import EventType

CAUSED_BY: dict[EventType, AuditAction] = {
    EventType.STARTED: AuditAction.MODEL_DEPLOY,
    EventType.READY: AuditAction.MODEL_DEPLOY,
    EventType.FAILED: AuditAction.MODEL_DEPLOY,
    EventType.DELETING: AuditAction.MODEL_UNDEPLOY,
    EventType.DELETED: AuditAction.MODEL_UNDEPLOY,
}


@dataclass(frozen=True, slots=True)
class SentRequest:
    """A deploy or undeploy request that sent a command (from the audit trail)."""

    at: datetime
    action: AuditAction
    requested_by: str | None  # the key prefix; None for requests without one


def requested_by(event_type: str, applied_at: datetime, requests: Sequence[SentRequest]) -> str | None:
    """The key prefix of the request that caused the event; `requests` sorted by `at`, oldest first."""
    try:
        cause = CAUSED_BY.get(EventType(event_type))
    except ValueError:
        return None
    if cause is None:
        return None
    index = bisect.bisect_right([request.at for request in requests], applied_at)
    if index == 0:
        return None
    latest = requests[index - 1]
    return latest.requested_by if latest.action is cause else None
