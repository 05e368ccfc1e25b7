"""PURE: what an alias move, removal or rollback does, and how it reads in a model's history.

An alias is a pointer from a model name to one of its versions (a model_id). A move keeps the target it
replaces as `previous_model_id`, so one rollback call swaps them back. Stores write the result with a
compare-and-set on the alias's `revision`; two moves at once never lose one.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class AliasState(msgspec.Struct, kw_only=True, frozen=True):
    namespace_id: str
    name: str
    alias: str
    model_id: str
    previous_model_id: str | None = None
    updated_at: datetime
    updated_by: str | None = None
    # Compare-and-set guard: every write increments it.
    revision: int = 1


class AliasHistoryKind(enum.StrEnum):
    """History entry types of alias changes, shown by a model's history route next to deployment events."""

    ASSIGNED = "alias.assigned"
    UNASSIGNED = "alias.unassigned"


class NoPreviousTarget(Exception):
    """A rollback of an alias that never pointed anywhere else."""


def undo(before: AliasState | None, after: AliasState) -> AliasState | None:
    """What takes back the write of `after` over `before`: `before` again (a newer revision, so the guard
    of any write made from `after` fails), or None: remove the alias it created."""
    if before is None:
        return None
    return msgspec.structs.replace(before, revision=after.revision + 1)


def move(
    current: AliasState | None,
    *,
    namespace_id: str,
    name: str,
    alias: str,
    model_id: str,
    now: datetime,
    actor: str | None,
) -> AliasState:
    """The alias after pointing it at `model_id` (a move to its own target changes only who and when)."""
    if current is None:
        return AliasState(
            namespace_id=namespace_id,
            name=name,
            alias=alias,
            model_id=model_id,
            updated_at=now,
            updated_by=actor,
        )
    previous = current.previous_model_id if current.model_id == model_id else current.model_id
    return msgspec.structs.replace(
        current,
        model_id=model_id,
        previous_model_id=previous,
        updated_at=now,
        updated_by=actor,
        revision=current.revision + 1,
    )


def rollback(current: AliasState, *, now: datetime, actor: str | None) -> AliasState:
    """Back to the previous target; the target left becomes the previous one (a second rollback undoes)."""
    if current.previous_model_id is None:
        raise NoPreviousTarget(current.alias)
    return msgspec.structs.replace(
        current,
        model_id=current.previous_model_id,
        previous_model_id=current.model_id,
        updated_at=now,
        updated_by=actor,
        revision=current.revision + 1,
    )


class HistoryNote(msgspec.Struct, frozen=True):
    """One history entry to add to one model because of an alias change."""

    model_id: str
    kind: AliasHistoryKind
    message: str


def history_notes(before: AliasState | None, after: AliasState | None) -> list[HistoryNote]:
    """What each model concerned by a change shows in its history (nothing when the target did not move)."""
    old = before.model_id if before is not None else None
    new = after.model_id if after is not None else None
    if old == new:
        return []
    alias = (after or before).alias  # type: ignore[union-attr]  # one of them is set when old != new
    notes: list[HistoryNote] = []
    if old is not None:
        where = f"moved to {new}" if new is not None else "removed"
        notes.append(HistoryNote(old, AliasHistoryKind.UNASSIGNED, f"alias {alias} {where}"))
    if new is not None:
        where = f" (from {old})" if old is not None else ""
        notes.append(HistoryNote(new, AliasHistoryKind.ASSIGNED, f"alias {alias} now points here{where}"))
    return notes


def aliases_by_model(states: list[AliasState]) -> dict[str, list[str]]:
    """model_id → its aliases, sorted (every model view shows its own)."""
    found: dict[str, list[str]] = {}
    for state in states:
        found.setdefault(state.model_id, []).append(state.alias)
    return {model_id: sorted(aliases) for model_id, aliases in found.items()}
