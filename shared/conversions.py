"""The Beanie documents' pydantic fields ↔ the msgspec structs of the contracts and rules, in one place.

Deployment info (and resource requirements) exist twice: as pydantic models inside the stored document
(`shared/documents.py`) and as msgspec structs in events, rules and API bodies (`shared/contracts.py`).
The API's views convert whole documents (`services/api/models/views.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from modelreg.shared.contracts import ModelDeploymentInfo
from modelreg.shared.deployment_rules import ObservedDeployment, status_for_legacy
from modelreg.shared.documents import DeploymentInfoFields, ModelDetails


def aware_utc(value: datetime | None) -> datetime | None:
    """`value` with its zone; documents written by other services may hold naive datetimes, UTC by MongoDB's
    convention."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def deployment_info_struct(fields: DeploymentInfoFields | None) -> ModelDeploymentInfo | None:
    return None if fields is None else msgspec.convert(fields.model_dump(), ModelDeploymentInfo)


def deployment_info_document(info: ModelDeploymentInfo | None) -> dict[str, Any] | None:
    """The stored form of a deployment info (datetimes stay BSON dates)."""
    return None if info is None else msgspec.to_builtins(info, builtin_types=(datetime,))


def observed_from_details(details: ModelDetails) -> ObservedDeployment:
    """The part of a stored model that deployment events change, as the rules see it."""
    return ObservedDeployment(
        deployed=details.deployed,
        deployment_info=deployment_info_struct(details.deployment_info),
        status=details.deployment_status or status_for_legacy(details.deployed),
        message=details.deployment_message,
        last_event_sequence=details.last_event_sequence,
        observed_at=details.observed_at,
        cluster=details.cluster,
        cluster_sequences=dict(details.cluster_sequences or {}),
        desired_cluster=details.desired_cluster,
    )
