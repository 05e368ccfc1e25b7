"""Bodies of the audit routes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from modelreg.shared.audit import AuditAction, AuditOutcome

if TYPE_CHECKING:
    AuditActionName = str
    AuditOutcomeName = str
else:
    AuditActionName = Literal[tuple(a.value for a in AuditAction)]
    AuditOutcomeName = Literal[tuple(o.value for o in AuditOutcome)]


def _meta(title: str, description: str) -> msgspec.Meta:
    return msgspec.Meta(title=title, description=description)


class AuditEntryView(msgspec.Struct, kw_only=True):
    """One recorded write."""

    entry_id: Annotated[str, msgspec.Meta(title="Entry Id")]
    at: Annotated[datetime, _meta("At", "When the write was asked for (recorded before it)")]
    action: Annotated[AuditActionName, msgspec.Meta(title="Action")]
    namespaces: Annotated[list[str], _meta("Namespaces", "The namespaces the entry belongs to")]
    model_id: Annotated[str | None, _meta("Model Id", "The model written, for model actions")] = None
    target: Annotated[dict[str, Any], _meta("Target", "What else identifies the target (name, key prefix)")]
    via: Annotated[str, _meta("Via", "api (a request) or cli (an operator command)")]
    key_prefix: Annotated[str | None, _meta("Key Prefix", "The API key of the request")] = None
    request_id: Annotated[str | None, _meta("Request Id", "The request's X-Request-ID")] = None
    outcome: Annotated[
        AuditOutcomeName,
        _meta(
            "Outcome",
            "done; refused (code says why, nothing changed); failed; pending (not settled: the target's "
            "state tells what happened)",
        ),
    ]
    code: Annotated[str | None, _meta("Code", "The refusal's error code")] = None
    details: Annotated[dict[str, Any], _meta("Details", "What the write did (command id, tags, ...)")]
    settled_at: Annotated[datetime | None, _meta("Settled At", "When the outcome was recorded")] = None


class AuditPageResponse(msgspec.Struct, kw_only=True):
    """A page of a namespace's audit trail, newest first."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id")]
    entries: Annotated[list[AuditEntryView], msgspec.Meta(title="Entries")]
    total: Annotated[int, _meta("Total", "Entries matching the filters, over all pages")]
    limit: Annotated[int, msgspec.Meta(title="Limit")]
    offset: Annotated[int, msgspec.Meta(title="Offset")]
    next_offset: Annotated[int | None, _meta("Next Offset", "Offset of the next page; null on the last")] = (
        None
    )


class OrgAuditPageResponse(msgspec.Struct, kw_only=True):
    """A page of the organization's audit trail (admin keys), newest first."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    namespace_id: Annotated[
        str | None,
        _meta("Namespace Id", "The namespace_id filter; null: every namespace's entries and those of none"),
    ] = None
    entries: Annotated[list[AuditEntryView], msgspec.Meta(title="Entries")]
    total: Annotated[int, _meta("Total", "Entries matching the filters, over all pages")]
    limit: Annotated[int, msgspec.Meta(title="Limit")]
    offset: Annotated[int, msgspec.Meta(title="Offset")]
    next_offset: Annotated[int | None, _meta("Next Offset", "Offset of the next page; null on the last")] = (
        None
    )
