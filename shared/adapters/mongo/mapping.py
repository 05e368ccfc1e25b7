"""Between stored documents and the rules' structs: filters by model, observed state, history entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from modelreg.shared.contracts import DeploymentEvent, ModelKey
from modelreg.shared.conversions import deployment_info_document
from modelreg.shared.conversions import observed_from_details as observed_from_details  # re-exported
from modelreg.shared.deployment_rules import ObservedChange


def key_filter(key: ModelKey) -> dict[str, str]:
    return {"namespace_id": key.namespace_id, "model_id": key.model_id}


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
        "cluster": event.cluster,
    }


def observed_update(change: ObservedChange, now: datetime, history_limit: int) -> dict[str, Any]:
    """The update that stores `change.after` and appends its events to the model's bounded history."""
    after = change.after
    return {
        "$set": {
            "deployed": after.deployed,
            "deployment_info": deployment_info_document(after.deployment_info),
            "deployment_status": str(after.status),
            "deployment_message": after.message,
            "last_event_sequence": after.last_event_sequence,
            "observed_at": after.observed_at,
            "cluster": after.cluster,
            "cluster_sequences": after.cluster_sequences,
            "updated_at": now,
        },
        "$push": {
            "deployment_history": {
                "$each": [history_entry(e, now) for e in change.applied],
                "$slice": -history_limit,
            }
        },
    }
