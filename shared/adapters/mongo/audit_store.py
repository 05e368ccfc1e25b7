"""The `audit_log` collection: the audit trail's entries (journaled writes, like every write here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from beanie import SortDirection

from modelreg.shared.audit import AuditAction, AuditEntry, AuditOutcome, AuditQuery
from modelreg.shared.documents import AuditDocument


def audit_filter(query: AuditQuery) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if query.namespace_id is not None:
        found["namespaces"] = query.namespace_id
    if query.model_id is not None:
        found["model_id"] = query.model_id
    if query.action is not None:
        found["action"] = str(query.action)
    window: dict[str, datetime] = {}
    if query.since is not None:
        window["$gte"] = query.since
    if query.until is not None:
        window["$lt"] = query.until
    if window:
        found["at"] = window
    return found


def _entry(document: AuditDocument) -> AuditEntry:
    return msgspec.convert(document.model_dump(exclude={"id", "revision_id"}), AuditEntry)


class AuditStore:
    async def append(self, entry: AuditEntry) -> None:
        await AuditDocument(**msgspec.to_builtins(entry, builtin_types=(datetime,))).insert()

    async def settle(
        self,
        entry_id: str,
        outcome: AuditOutcome,
        *,
        at: datetime,
        code: str | None,
        model_id: str | None,
        target: dict[str, Any],
        details: dict[str, Any],
    ) -> None:
        await AuditDocument.find_one({"entry_id": entry_id}).update(
            {
                "$set": {
                    "outcome": str(outcome),
                    "settled_at": at,
                    "code": code,
                    "model_id": model_id,
                    "target": target,
                    "details": details,
                }
            }
        )

    async def sent_deployment_requests(
        self, namespace_id: str, model_id: str, limit: int
    ) -> list[AuditEntry]:
        found = {
            "namespaces": namespace_id,
            "model_id": model_id,
            "action": {"$in": [str(AuditAction.MODEL_DEPLOY), str(AuditAction.MODEL_UNDEPLOY)]},
            "outcome": str(AuditOutcome.DONE),
            "details.sent": True,
        }
        documents = (
            await AuditDocument.find(found)
            .sort([("at", SortDirection.DESCENDING), ("entry_id", SortDirection.DESCENDING)])
            .limit(limit)
            .to_list()
        )
        return [_entry(document) for document in documents]

    async def page(self, query: AuditQuery, offset: int, limit: int) -> tuple[int, list[AuditEntry]]:
        found = audit_filter(query)
        total = await AuditDocument.find(found).count()
        documents = (
            await AuditDocument.find(found)
            .sort([("at", SortDirection.DESCENDING), ("entry_id", SortDirection.DESCENDING)])
            .skip(offset)
            .limit(limit)
            .to_list()
        )
        return total, [_entry(document) for document in documents]
