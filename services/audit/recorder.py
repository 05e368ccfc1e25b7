"""Recording a write in the audit trail: one `async with audit.recording(...)` around the write.

The entry is stored before the write (write-ahead, outcome `pending`), so a write that happened always has
its entry; if storing it fails, the write is not attempted. After the write the entry is settled: `done`,
`refused` (an exception carrying a `code`, i.e. a domain error: nothing changed) or `failed`. A settle that
fails is logged and leaves the entry `pending`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from modelreg.services.audit.ports import AuditLog
from modelreg.shared.audit import AuditAction, AuditEntry, AuditOutcome, current_actor
from modelreg.shared.documents import utc_now

log = structlog.get_logger("modelreg.audit")


def _now_ms() -> datetime:
    now = utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass
class AuditNote:
    """What the write learns while it runs and adds to its entry (the new model's id, a command id...)."""

    model_id: str | None
    target: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class Audit:
    def __init__(self, store: AuditLog | None, clock: Callable[[], datetime] = _now_ms) -> None:
        """`store` None records nothing (services built without an audit trail, e.g. in unit tests)."""
        self.store = store
        self.clock = clock

    @asynccontextmanager
    async def recording(
        self,
        action: AuditAction,
        namespaces: Sequence[str],
        *,
        model_id: str | None = None,
        target: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        refusal: Callable[[BaseException], str | None] | None = None,
    ) -> AsyncIterator[AuditNote]:
        """`refusal` gives the code of other exceptions that mean the write was refused (nothing changed),
        None for the rest; domain errors (`code`, `message`) are refusals anyway."""
        note = AuditNote(model_id=model_id, target=dict(target or {}), details=dict(details or {}))
        if self.store is None:
            yield note
            return
        actor = current_actor.get()
        entry = AuditEntry(
            entry_id=uuid.uuid4().hex,
            at=self.clock(),
            action=action,
            namespaces=list(namespaces),
            model_id=model_id,
            target=note.target,
            via=actor.via,
            key_prefix=actor.key_prefix,
            request_id=actor.request_id,
            details=note.details,
        )
        await self.store.append(entry)
        try:
            yield note
        except BaseException as exc:
            refused = hasattr(exc, "code") and hasattr(exc, "message")  # a domain error's shape
            code = getattr(exc, "code", None) if refused else None
            if not refused and refusal is not None and (code := refusal(exc)) is not None:
                refused = True
            await self._settle(entry, AuditOutcome.REFUSED if refused else AuditOutcome.FAILED, code, note)
            raise
        await self._settle(entry, AuditOutcome.DONE, None, note)

    async def _settle(
        self, entry: AuditEntry, outcome: AuditOutcome, code: str | None, note: AuditNote
    ) -> None:
        assert self.store is not None
        try:
            await self.store.settle(
                entry.entry_id,
                outcome,
                at=self.clock(),
                code=code,
                model_id=note.model_id,
                target=note.target,
                details=note.details,
            )
        except Exception as exc:  # the entry stays pending: its target's state tells the outcome
            log.error("audit entry not settled", entry_id=entry.entry_id, error=repr(exc)[:300])


NOT_AUDITED = Audit(None)
