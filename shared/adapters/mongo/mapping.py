"""Between stored documents and the rules' structs: filters by model, observed state, history entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from shared.contracts import DeploymentEvent, ModelDeploymentInfo, ModelKey
from shared.deployment_rules import ObservedChange, ObservedDeployment, status_for_legacy
from shared.documents import ModelDetails


def key_filter(key: ModelKey) -> dict[str, str]:
    return {"namespace_id": key.namespace_id, "model_id": key.model_id}


def observed_from_details(details: ModelDetails) -> ObservedDeployment:
    info = details.deployment_info
    return ObservedDeployment(
        deployed=details.deployed,
        deployment_info=msgspec.convert(info.model_dump(), ModelDeploymentInfo) if info else None,
        status=details.deployment_status or status_for_legacy(details.deployed),
        message=details.deployment_message,
        last_event_sequence=details.last_event_sequence,
        observed_at=details.observed_at,
    )


def history_entry(event: DeploymentEvent, applied_at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id),
        "event_type": str(event.event_type),
        "sequence": event.sequence,
        "occurred_at": event.occurred_at,
        "applied_at": applied_at,
        "endpoint": event.endpoint,
        "ray_deployment_name": event.ray_deployment_name,
        "message": event.message,
    }


def to_document(value: msgspec.Struct | None) -> dict[str, Any] | None:
    return None if value is None else msgspec.to_builtins(value, builtin_types=(datetime,))


def observed_update(change: ObservedChange, now: datetime, history_limit: int) -> dict[str, Any]:
    """The update that stores `change.after` and appends its events to the model's bounded history."""
    after = change.after
    return {
        "$set": {
            "deployed": after.deployed,
            "deployment_info": to_document(after.deployment_info),
            "deployment_status": str(after.status),
            "deployment_message": after.message,
            "last_event_sequence": after.last_event_sequence,
            "observed_at": after.observed_at,
            "updated_at": now,
        },
        "$push": {
            "deployment_history": {
                "$each": [history_entry(e, now) for e in change.applied],
                "$slice": -history_limit,
            }
        },
    }
