"""Reading a namespace's audit trail."""

from __future__ import annotations

import msgspec

from modelreg.services.api.audit.schemas import AuditEntryView, AuditPageResponse
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
        total, entries = await self.store.page(namespace_id, query, offset, limit)
        return AuditPageResponse(
            namespace_id=namespace_id,
            entries=[entry_view(entry) for entry in entries],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset(offset, len(entries), total),
        )
