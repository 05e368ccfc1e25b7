"""PURE: which request caused a deployment event, for the `requested_by` of a model's history.

Events carry no command id, so the cause is read from the audit trail: an event is attributed to the latest
deploy or undeploy request of the model that sent a command at or before the event was applied, when the
event goes the request's way (started, ready, failed after a deploy; deleting, deleted after an undeploy).
Events no request explains (unhealthy, or going the other way) have no `requested_by`.

The change feed says the same (`shared/change_rules.py`): the API stores the request's key prefix
(`request_key_prefix`, the same value as the request's audit entry's `key_prefix`) as `desired_by` in the
write that records `desired_state`; a deploy/undeploy request's change shows it, and a deployment change
shows it when the event goes the stored request's way (`caused_by`), as the history does.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from modelreg.shared.audit import Actor, AuditAction
from modelreg.shared.contracts import EventType

CAUSED_BY: dict[EventType, AuditAction] = {
    EventType.STARTED: AuditAction.MODEL_DEPLOY,
    EventType.READY: AuditAction.MODEL_DEPLOY,
    EventType.FAILED: AuditAction.MODEL_DEPLOY,
    EventType.DELETING: AuditAction.MODEL_UNDEPLOY,
    EventType.DELETED: AuditAction.MODEL_UNDEPLOY,
}


# The request action a desired state records.
REQUEST_ACTIONS: dict[str, AuditAction] = {
    "deployed": AuditAction.MODEL_DEPLOY,
    "not_deployed": AuditAction.MODEL_UNDEPLOY,
}


def request_key_prefix(actor: Actor) -> str | None:
    """Who a deploy/undeploy request is attributed to: the requesting key's prefix (None from the CLI)."""
    return actor.key_prefix


def caused_by(event_type: str | None) -> AuditAction | None:
    """The request action an event goes the way of (None: no request explains it)."""
    try:
        return CAUSED_BY.get(EventType(event_type)) if event_type is not None else None
    except ValueError:
        return None


def requested_by_desired(event_type: str | None, desired_state: object, desired_by: object) -> str | None:
    """The change feed's rule: the stored request (`desired_state`, `desired_by`) explains the event when
    the event goes its way; its key prefix then."""
    cause = caused_by(event_type)
    if cause is None or not isinstance(desired_state, str) or not isinstance(desired_by, str):
        return None
    return desired_by if REQUEST_ACTIONS.get(desired_state) is cause else None


@dataclass(frozen=True, slots=True)
class SentRequest:
    """A deploy or undeploy request that sent a command (from the audit trail)."""

    at: datetime
    action: AuditAction
    requested_by: str | None  # the key prefix; None for requests without one


def requested_by(event_type: str, applied_at: datetime, requests: Sequence[SentRequest]) -> str | None:
    """The key prefix of the request that caused the event; `requests` sorted by `at`, oldest first."""
    cause = caused_by(event_type)
    if cause is None:
        return None
    index = bisect.bisect_right([request.at for request in requests], applied_at)
    if index == 0:
        return None
    latest = requests[index - 1]
    return latest.requested_by if latest.action is cause else None
