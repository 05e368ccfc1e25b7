"""Deleting a model: undeploy it (by command) if anything is deployed, then remove its record and archive."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from modelreg.services.api.domain_errors import ModelHasAliases
from modelreg.services.api.models.deployment_requests import send_command
from modelreg.services.api.models.ports import AliasIndex, ArchiveStore, CommandSender, ModelRepository
from modelreg.services.api.models.schemas import ModelDeleteResponse
from modelreg.services.api.models.views import current_status
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.audit import AuditAction
from modelreg.shared.contracts import CommandType, ModelKey
from modelreg.shared.deployment_rules import DesiredState, RequestOutcome, decide_request

log = structlog.get_logger("modelreg.api")

ALREADY_GONE = "Model not found; nothing was deleted"


def deletion_message(deleted: bool, undeploy_command_id: str | None) -> str:
    if not deleted:
        return ALREADY_GONE
    if undeploy_command_id is not None:
        return "Model deleted; an undeploy command was sent for its deployment"
    return "Model deleted"


class ModelDeletion:
    def __init__(
        self,
        store: ModelRepository,
        storage: ArchiveStore,
        publisher: CommandSender,
        clock: Callable[[], datetime],
        aliases: AliasIndex | None = None,
        audit: Audit = NOT_AUDITED,
    ) -> None:
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.clock = clock
        self.aliases = aliases
        self.audit = audit

    async def delete(self, key: ModelKey, *, force: bool = False) -> ModelDeleteResponse:
        """Refuses (ModelHasAliases) a model aliases point at, unless `force`: then the aliases go too."""
        async with self.audit.recording(
            AuditAction.MODEL_DELETE, [key.namespace_id], model_id=key.model_id
        ) as note:
            answer = await self._delete(key, force)
            note.details.update(deleted=answer.deleted, undeploy_command_id=answer.undeploy_command_id)
            return answer

    async def _delete(self, key: ModelKey, force: bool) -> ModelDeleteResponse:
        details = await self.store.get_details(key)
        if details is None:
            return ModelDeleteResponse(model_id=key.model_id, message=ALREADY_GONE, deleted=False)
        if self.aliases is not None:
            pointing = (await self.aliases.aliases_of(key.namespace_id, [key.model_id])).get(key.model_id, [])
            if pointing and not force:
                raise ModelHasAliases(key, pointing)
        undeploy_id = None
        if (
            decide_request(current_status(details), DesiredState.NOT_DEPLOYED).outcome
            is RequestOutcome.PUBLISH
        ):
            command = await send_command(
                self.publisher, key, CommandType.UNDEPLOY, self.clock(), details.cluster
            )
            undeploy_id = str(command.command_id)
        deleted = await self.store.delete_model(key)  # its aliases go with it (the store's delete_model)
        if deleted:
            try:
                await self.storage.delete(details.model_archive_url, key.namespace_id, key.model_id)
            except Exception as exc:  # the record is gone; an orphaned file is only wasted space
                log.warning("archive not deleted", url=details.model_archive_url, error=repr(exc)[:300])
        log.info(
            "model deleted",
            namespace_id=key.namespace_id,
            model_id=key.model_id,
            undeploy_command=undeploy_id,
        )
        return ModelDeleteResponse(
            model_id=key.model_id,
            message=deletion_message(deleted, undeploy_id),
            deleted=deleted,
            undeploy_command_id=undeploy_id,
        )
