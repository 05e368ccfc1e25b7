"""Changing a model's tags: set some, remove others (null), atomically per key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from modelreg.services.api.domain_errors import InvalidField, ModelNotFound
from modelreg.services.api.models.ports import ModelRepository
from modelreg.services.api.models.schemas import ModelDetailResponse, ModelPatch
from modelreg.services.api.models.views import to_view
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.audit import AuditAction
from modelreg.shared.contracts import ModelKey
from modelreg.shared.tags import MAX_TAGS, TagError, check_changes, too_many_after

log = structlog.get_logger("modelreg.api")


class ModelTagging:
    def __init__(
        self, store: ModelRepository, clock: Callable[[], datetime], audit: Audit = NOT_AUDITED
    ) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit

    async def patch(self, key: ModelKey, patch: ModelPatch) -> ModelDetailResponse:
        async with self.audit.recording(
            AuditAction.MODEL_TAGS, [key.namespace_id], model_id=key.model_id, details={"tags": patch.tags}
        ):
            return await self._patch(key, patch)

    async def _patch(self, key: ModelKey, patch: ModelPatch) -> ModelDetailResponse:
        try:
            to_set, to_remove = check_changes(patch.tags)
        except TagError as exc:
            raise InvalidField(exc.message, "tags") from None
        current = await self.store.get_details(key)
        if current is None:
            raise ModelNotFound(key)
        if too_many_after(current.tags, to_set, to_remove):
            raise InvalidField(f"a model has at most {MAX_TAGS} tags", "tags")
        updated = await self.store.update_tags(key, to_set, to_remove, self.clock())
        if updated is None:
            raise ModelNotFound(key)
        log.info(
            "model tags changed",
            namespace_id=key.namespace_id,
            model_id=key.model_id,
            set=sorted(to_set),
            removed=sorted(to_remove),
        )
        return ModelDetailResponse(model=to_view(updated))
