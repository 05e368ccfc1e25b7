"""Who did what: the audit trail's record, the actor of a write, and the actions recorded.

Every write of the registry (upload, tag change, deploy/undeploy request, delete, key create and revoke) is
recorded ahead of the write (outcome `pending`) and settled after it (`done`, `refused` with the refusal's
code, or `failed`): an entry is never lost once the write happened, because it was written first; an entry
still `pending` means the outcome was not recorded (a crash, or the database went away meanwhile) and the
target's state tells what happened. See `services/audit/recorder.py`.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import msgspec


class AuditAction(enum.StrEnum):
    MODEL_UPLOAD = "model.upload"
    MODEL_TAGS = "model.tags"
    MODEL_DEPLOY = "model.deploy"
    MODEL_UNDEPLOY = "model.undeploy"
    MODEL_DELETE = "model.delete"
    KEY_CREATE = "key.create"
    KEY_REVOKE = "key.revoke"
    ALIAS_SET = "alias.set"
    ALIAS_ROLLBACK = "alias.rollback"
    ALIAS_REMOVE = "alias.remove"


class AuditOutcome(enum.StrEnum):
    PENDING = "pending"  # recorded ahead of the write; not settled (yet)
    DONE = "done"
    REFUSED = "refused"  # the registry refused the request (`code` says why); nothing changed
    FAILED = "failed"  # an unexpected error; the target's state tells whether anything changed


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who writes: an API request (its key prefix and request id) or an operator command (`via` cli)."""

    via: str
    key_prefix: str | None = None
    request_id: str | None = None


CLI_ACTOR = Actor(via="cli")
# The API sets the request's actor before its handler runs (services/api/app.py); elsewhere (the
# operator's command line) writes are the CLI's.
current_actor: ContextVar[Actor] = ContextVar("modelreg_audit_actor", default=CLI_ACTOR)


class AuditEntry(msgspec.Struct, kw_only=True):
    entry_id: str
    at: datetime
    action: AuditAction
    # The namespaces the entry belongs to: the model's, or a key's (none for an admin key's).
    namespaces: list[str]
    model_id: str | None = None
    target: dict[str, Any] = msgspec.field(default_factory=dict)
    via: str
    key_prefix: str | None = None
    request_id: str | None = None
    outcome: AuditOutcome = AuditOutcome.PENDING
    code: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    settled_at: datetime | None = None


class AuditQuery(msgspec.Struct, kw_only=True, frozen=True):
    """Which entries to list (every field that is set must match)."""

    namespace_id: str | None = None  # the namespace's entries; None: every entry, namespace-less ones too
    model_id: str | None = None
    action: AuditAction | None = None
    since: datetime | None = None
    until: datetime | None = None
