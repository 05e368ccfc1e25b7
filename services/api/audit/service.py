"""Reading the audit trail: a namespace's, or the organization's (every entry, for admin keys)."""

from __future__ import annotations

import msgspec

from modelreg.services.api.audit.schemas import AuditEntryView, AuditPageResponse, OrgAuditPageResponse
from modelreg.services.api.models.views import next_offset
from modelreg.services.audit.ports import AuditLog
from modelreg.shared.audit import AuditEntry, AuditQuery
from modelreg.shared.conversions import aware_utc


def entry_view(entry: AuditEntry) -> AuditEntryView:
    raw = msgspec.structs.asdict(entry)
    raw["at"] = aware_utc(entry.at)
    raw["settled_at"] = aware_utc(entry.settled_at)
    return msgspec.convert(raw, AuditEntryView, from_attributes=True)


class AuditReads:
    def __init__(self, store: AuditLog) -> None:
        self.store = store

    async def page(self, namespace_id: str, query: AuditQuery, offset: int, limit: int) -> AuditPageResponse:
        found = await self.org_page(msgspec.structs.replace(query, namespace_id=namespace_id), offset, limit)
        return AuditPageResponse(
            namespace_id=namespace_id,
            entries=found.entries,
            total=found.total,
            limit=limit,
            offset=offset,
            next_offset=found.next_offset,
        )

    async def org_page(self, query: AuditQuery, offset: int, limit: int) -> OrgAuditPageResponse:
        """Every entry matching `query`; with its `namespace_id`, that namespace's only."""
        total, entries = await self.store.page(query, offset, limit)
        return OrgAuditPageResponse(
            namespace_id=query.namespace_id,
            entries=[entry_view(entry) for entry in entries],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset(offset, len(entries), total),
        )
