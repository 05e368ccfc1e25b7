"""What a committed change of a model means: its kind and what happened, derived from the change alone.

Pure: the change feed's RegistryChange in, a ModelChangeSummary out. The deployment details (event type,
sequence, message, endpoint) come from the history entry the worker's write appended, never from a second
write.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from modelreg.shared.audit_rules import requested_by_desired
from modelreg.shared.changes import ChangedCollection, ChangeOperation, RegistryChange


class ChangeKind(enum.StrEnum):
    MODEL_CREATED = "model.created"
    DEPLOYMENT_CHANGED = "deployment.changed"
    DEPLOY_REQUESTED = "deploy.requested"
    UNDEPLOY_REQUESTED = "undeploy.requested"
    MODEL_DELETED = "model.deleted"
    MODEL_UPDATED = "model.updated"


CHANGE_KINDS = [str(kind) for kind in ChangeKind]
REQUEST_KINDS = {"deployed": ChangeKind.DEPLOY_REQUESTED, "not_deployed": ChangeKind.UNDEPLOY_REQUESTED}


class ModelChangeSummary(msgspec.Struct, kw_only=True, frozen=True):
    kind: ChangeKind
    namespace_id: str
    model_id: str
    # From the applied deployment event (deployment.changed) or the request (deploy/undeploy.requested).
    event_type: str | None = None
    sequence: int | None = None
    message: str | None = None
    endpoint: str | None = None
    deployment_status: str | None = None
    requested_by: str | None = None


def summarize(change: RegistryChange) -> ModelChangeSummary | None:
    """The meaning of a change of `custom_models`; None for other collections or unknown models."""
    if change.collection != ChangedCollection.MODELS:
        return None
    document = change.document if change.document is not None else change.document_before
    if document is None:
        return None
    namespace_id, model_id = document.get("namespace_id"), document.get("model_id")
    if not isinstance(namespace_id, str) or not isinstance(model_id, str):
        return None
    base: dict[str, Any] = {"namespace_id": namespace_id, "model_id": model_id}
    status = document.get("deployment_status")
    base["deployment_status"] = status if isinstance(status, str) else None
    if change.operation == ChangeOperation.DELETE:
        return ModelChangeSummary(kind=ChangeKind.MODEL_DELETED, **base)
    if change.operation == ChangeOperation.INSERT:
        return ModelChangeSummary(kind=ChangeKind.MODEL_CREATED, **base)
    updated = change.updated_fields
    entry = applied_history_entry(updated, document)
    if entry is not None:
        event_type = _text(entry.get("event_type"))
        return ModelChangeSummary(
            kind=ChangeKind.DEPLOYMENT_CHANGED,
            event_type=event_type,
            requested_by=requested_by_desired(
                event_type, document.get("desired_state"), document.get("desired_by")
            ),
            sequence=entry.get("sequence") if isinstance(entry.get("sequence"), int) else None,
            message=_text(entry.get("message")),
            endpoint=_text(entry.get("endpoint")),
            **base,
        )
    desired = updated.get("desired_state")
    if "desired_state" not in updated and "desired_at" in updated:
        # A request repeating the stored wish (deploy while pending, undeploy while deleting): the database
        # leaves unchanged fields out of the update, so only desired_at shows it.
        desired = document.get("desired_state")
    if desired in REQUEST_KINDS:
        kind = REQUEST_KINDS[desired]
        # The same write stored the request's key prefix (None from the CLI: `desired_by` is then unset).
        requested = updated["desired_by"] if "desired_by" in updated else document.get("desired_by")
        return ModelChangeSummary(kind=kind, requested_by=_text(requested), **base)
    return ModelChangeSummary(kind=ChangeKind.MODEL_UPDATED, **base)


def applied_history_entry(updated: dict[str, Any], document: dict[str, Any]) -> dict[str, Any] | None:
    """The newest history entry an update appended (the worker's write sets last_event_sequence and pushes
    the applied events), taken from the update itself or else from the committed document."""
    appended = [
        value
        for name, value in updated.items()
        if name == "deployment_history" or name.startswith("deployment_history.")
    ]
    entries: list[Any] = []
    for value in appended:
        entries.extend(value if isinstance(value, list) else [value])
    appended_entries: list[dict[str, Any]] = [entry for entry in entries if isinstance(entry, dict)]
    if "last_event_sequence" not in updated and not appended_entries:
        return None
    sequence = updated.get("last_event_sequence")
    history = document.get("deployment_history")
    candidates = appended_entries or (history if isinstance(history, list) else [])
    matching: list[dict[str, Any]] = [
        e for e in candidates if isinstance(e, dict) and e.get("sequence") == sequence
    ]
    if matching:
        return matching[-1]
    if appended_entries:
        return appended_entries[-1]
    return None if sequence is None else {"sequence": sequence}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def matches(summary: ModelChangeSummary, namespace_id: str, model_id: str | None = None) -> bool:
    return summary.namespace_id == namespace_id and (model_id is None or summary.model_id == model_id)
