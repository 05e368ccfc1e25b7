"""What clients see of a stored model: the view structs built from documents, and their ETags."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from modelreg.services.api.models.schemas import CustomModelDocument, DeploymentHistoryEvent, ModelListItem
from modelreg.shared.contracts import DeploymentStatus
from modelreg.shared.conversions import aware_utc, observed_from_details
from modelreg.shared.deployment_rules import effective_status
from modelreg.shared.documents import HistoryEntry, ModelDetails

# Bookkeeping fields of the document that the view leaves out or shows differently.
_BOOKKEEPING = {
    "deployment_status",
    "deployment_message",
    "last_event_sequence",
    "observed_at",
    "desired_state",
    "desired_at",
    "cluster",
    "cluster_sequences",
    "desired_cluster",
    "failover",
}


def current_status(details: ModelDetails) -> DeploymentStatus:
    """The status the API reports: observed state, or the newer request not yet observed."""
    return effective_status(
        observed_from_details(details), details.desired_state, aware_utc(details.desired_at)
    )


def to_view(details: ModelDetails, aliases: Sequence[str] = ()) -> CustomModelDocument:
    raw = details.model_dump(exclude=_BOOKKEEPING)
    raw["aliases"] = list(aliases)
    raw["created_at"] = aware_utc(details.created_at)
    raw["updated_at"] = aware_utc(details.updated_at)
    if raw["deployment_info"] is not None:
        raw["deployment_info"]["deployed_at"] = aware_utc(raw["deployment_info"]["deployed_at"])
    raw["deployment_status"] = str(current_status(details))
    raw["deployment_message"] = details.deployment_message
    return msgspec.convert(raw, CustomModelDocument, from_attributes=True)


def to_list_item(details: ModelDetails, aliases: Sequence[str] = ()) -> ModelListItem:
    """The details' view plus Mixpeek's list fields: `source` and the endpoint while deployed."""
    view = to_view(details, aliases)
    info = view.deployment_info
    endpoint = info.endpoint if view.deployed and info is not None else None
    return ModelListItem(**msgspec.structs.asdict(view), source="customer", endpoint=endpoint)


def history_event_view(entry: HistoryEntry) -> DeploymentHistoryEvent:
    return msgspec.convert(
        {
            **entry.model_dump(),
            "occurred_at": aware_utc(entry.occurred_at),
            "applied_at": aware_utc(entry.applied_at),
        },
        DeploymentHistoryEvent,
    )


def next_offset(offset: int, returned: int, total: int) -> int | None:
    return offset + returned if offset + returned < total else None


def strong_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match semantics (weak comparison, as RFC 9110 prescribes for it)."""
    if not if_none_match:
        return False
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in candidates)
