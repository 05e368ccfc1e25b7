"""Where audit entries are kept (`shared.adapters.mongo.AuditStore`; an in-memory fake in tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from modelreg.shared.audit import AuditEntry, AuditOutcome, AuditQuery


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None:
        """Store a new entry (journaled); raises when it could not be stored."""
        ...

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
    ) -> None: ...

    async def sent_deployment_requests(
        self, namespace_id: str, model_id: str, limit: int
    ) -> list[AuditEntry]:
        """The model's latest deploy/undeploy requests that sent a command (done, sent), newest first."""
        ...

    async def page(self, query: AuditQuery, offset: int, limit: int) -> tuple[int, list[AuditEntry]]:
        """The entries matching `query` (a namespace's, or all), newest first, and how many match."""
        ...
