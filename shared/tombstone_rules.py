"""PURE: which late events a deleted model's tombstone acknowledges, and how long a tombstone lasts.

Deleting a model that is (being) deployed sends an undeploy command; the bridge's `deleting` and `deleted`
events for it arrive after the record is gone. A tombstone (the model's key, kept for
MODELREG_TOMBSTONE_RETENTION_S) lets the worker acknowledge them quietly instead of dead-lettering them as
`unknown_model`. Any other event for a missing model is still a dead letter.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modelreg.shared.contracts import EventType

# The events a deleted model's undeploy produces.
QUIET_AFTER_DELETE = frozenset({EventType.DELETING, EventType.DELETED})


def tombstone_expiry(deleted_at: datetime, retention_s: float) -> datetime:
    return deleted_at + timedelta(seconds=retention_s)


def is_acknowledged(event_type: EventType, tombstone_expires_at: datetime | None, now: datetime) -> bool:
    """A late event of a deleted model is acknowledged (not dead-lettered) while its tombstone lasts."""
    return (
        event_type in QUIET_AFTER_DELETE and tombstone_expires_at is not None and now < tombstone_expires_at
    )
