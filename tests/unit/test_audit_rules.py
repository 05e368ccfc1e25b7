"""Which request caused a deployment event (shared/audit_rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelreg.shared.audit import AuditAction
from modelreg.shared.audit_rules import SentRequest, requested_by

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEPLOY = SentRequest(at=T0, action=AuditAction.MODEL_DEPLOY, requested_by="aaa")
UNDEPLOY = SentRequest(at=T0 + timedelta(minutes=5), action=AuditAction.MODEL_UNDEPLOY, requested_by="bbb")
REQUESTS = [DEPLOY, UNDEPLOY]


@pytest.mark.parametrize(
    ("event_type", "minutes", "expected"),
    [
        ("deployment.started", 1, "aaa"),
        ("deployment.ready", 0, "aaa"),  # applied in the same millisecond as the request
        ("deployment.failed", 2, "aaa"),
        ("deployment.unhealthy", 2, None),  # nobody asks for that
        ("deployment.deleting", 2, None),  # goes against the latest request
        ("deployment.deleting", 6, "bbb"),
        ("deployment.deleted", 7, "bbb"),
        ("deployment.ready", 8, None),
        ("deployment.ready", -1, None),  # before any request
        ("deployment.exploded", 1, None),
    ],
)
def test_attribution(event_type: str, minutes: int, expected: str | None) -> None:
    assert requested_by(event_type, T0 + timedelta(minutes=minutes), REQUESTS) == expected


def test_no_requests_no_attribution() -> None:
    assert requested_by("deployment.ready", T0, []) is None
