"""Service layer of the models area: reads models and shapes them for the API."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from services.api.errors import NotFoundError
from services.api.models.schemas import CustomModelDocument, ModelDetailResponse
from shared.adapters.mongo import ModelStore, observed_from_details
from shared.contracts import ModelKey
from shared.deployment_rules import effective_status
from shared.documents import ModelDetails


def _aware(value: datetime | None) -> datetime | None:
    # Documents written by other services may hold naive datetimes; they are UTC by MongoDB's convention.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def to_view(details: ModelDetails) -> CustomModelDocument:
    observed = observed_from_details(details)
    raw = details.model_dump(
        exclude={
            "deployment_status",
            "deployment_message",
            "last_event_sequence",
            "observed_at",
            "desired_state",
            "desired_at",
        }
    )
    raw["created_at"] = _aware(details.created_at)
    raw["updated_at"] = _aware(details.updated_at)
    if raw["deployment_info"] is not None:
        raw["deployment_info"]["deployed_at"] = _aware(raw["deployment_info"]["deployed_at"])
    raw["deployment_status"] = str(
        effective_status(observed, details.desired_state, _aware(details.desired_at))
    )
    raw["deployment_message"] = details.deployment_message
    return msgspec.convert(raw, CustomModelDocument, from_attributes=True)


class ModelService:
    def __init__(self, store: ModelStore) -> None:
        self.store = store

    async def get_details(self, key: ModelKey) -> ModelDetailResponse:
        details = await self.store.get_details(key)
        if details is None:
            raise NotFoundError(
                "Model not found",
                details={"resource": "model", "namespace_id": key.namespace_id, "model_id": key.model_id},
            )
        return ModelDetailResponse(model=to_view(details))
