"""Aliases: set (move), read, list, remove, roll back; every write a compare-and-set on the alias."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog

from modelreg.services.api.aliases.ports import AliasRepository, DetailsInvalidation, ModelLookup, ModelViews
from modelreg.services.api.aliases.schemas import (
    AliasDeleteResponse,
    AliasDetailResponse,
    AliasListResponse,
    AliasResponse,
    AliasView,
)
from modelreg.services.api.domain_errors import (
    AliasNameMismatch,
    AliasNotFound,
    AliasTargetNotDeployed,
    AliasWithoutPrevious,
    ConcurrentRequest,
    ModelNotFound,
)
from modelreg.services.api.models.views import current_status
from modelreg.services.audit.recorder import NOT_AUDITED, Audit, AuditNote
from modelreg.shared.alias_rules import AliasState, NoPreviousTarget, history_notes, move, rollback, undo
from modelreg.shared.audit import AuditAction
from modelreg.shared.contracts import DeploymentStatus, ModelKey

log = structlog.get_logger("modelreg.api")

# Compare-and-set rounds before a write gives up (409 concurrent_request): each lost round means another
# move of the same alias was stored meanwhile, and the next round builds on it.
MAX_WRITE_ROUNDS = 8


def alias_view(state: AliasState) -> AliasView:
    return AliasView(
        name=state.name,
        alias=state.alias,
        model_id=state.model_id,
        previous_model_id=state.previous_model_id,
        updated_at=state.updated_at if state.updated_at.tzinfo else state.updated_at.replace(tzinfo=UTC),
        updated_by=state.updated_by,
    )


class AliasService:
    def __init__(
        self,
        store: AliasRepository,
        models: ModelLookup,
        views: ModelViews,
        clock: Callable[[], datetime],
        *,
        details_cache: DetailsInvalidation | None = None,
        audit: Audit = NOT_AUDITED,
    ) -> None:
        self.store = store
        self.models = models
        self.views = views
        self.clock = clock
        self.details_cache = details_cache
        self.audit = audit

    async def set(
        self,
        namespace_id: str,
        name: str,
        alias: str,
        model_id: str,
        *,
        actor: str | None,
        require_deployed: bool = False,
    ) -> AliasResponse:
        key = ModelKey(namespace_id, model_id)
        async with self._recording(AuditAction.ALIAS_SET, namespace_id, name, alias, model_id) as note:
            await self._check_target(key, name, require_deployed)
            for _ in range(MAX_WRITE_ROUNDS):
                before = await self.store.get(namespace_id, name, alias)
                after = move(
                    before,
                    namespace_id=namespace_id,
                    name=name,
                    alias=alias,
                    model_id=model_id,
                    now=self.clock(),
                    actor=actor,
                )
                if await self.store.write(before, after):
                    await self._target_still_there(key, before, after)
                    await self._changed(before, after, note)
                    return AliasResponse(alias=alias_view(after))
            raise ConcurrentRequest()

    async def _target_still_there(self, key: ModelKey, before: AliasState | None, after: AliasState) -> None:
        """A delete of the target that ran between the check and the write released the model's aliases
        before this one landed: take the write back (ModelNotFound) rather than leave the alias dangling.

        The delete removes the model first and its aliases after, so a write that lands later sees the
        model gone here, and one that landed earlier is removed by the delete.
        """
        if await self.models.get_details(key) is not None:
            return
        restored = undo(before, after)
        taken_back = (
            await self.store.remove(after) if restored is None else await self.store.write(after, restored)
        )
        log.info("alias write taken back: its target was deleted", alias=after.alias, taken_back=taken_back)
        raise ModelNotFound(key)

    async def rollback(self, namespace_id: str, name: str, alias: str, *, actor: str | None) -> AliasResponse:
        async with self._recording(AuditAction.ALIAS_ROLLBACK, namespace_id, name, alias, None) as note:
            for _ in range(MAX_WRITE_ROUNDS):
                before = await self._existing(namespace_id, name, alias)
                try:
                    after = rollback(before, now=self.clock(), actor=actor)
                except NoPreviousTarget:
                    raise AliasWithoutPrevious(alias) from None
                if await self.models.get_details(ModelKey(namespace_id, after.model_id)) is None:
                    raise AliasWithoutPrevious(alias)  # the previous target was deleted meanwhile
                if await self.store.write(before, after):
                    await self._changed(before, after, note)
                    return AliasResponse(alias=alias_view(after))
            raise ConcurrentRequest()

    async def remove(self, namespace_id: str, name: str, alias: str) -> AliasDeleteResponse:
        async with self._recording(AuditAction.ALIAS_REMOVE, namespace_id, name, alias, None) as note:
            for _ in range(MAX_WRITE_ROUNDS):
                before = await self._existing(namespace_id, name, alias)
                if await self.store.remove(before):
                    await self._changed(before, None, note)
                    return AliasDeleteResponse(name=name, alias=alias, model_id=before.model_id)
            raise ConcurrentRequest()

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasDetailResponse:
        state = await self._existing(namespace_id, name, alias)
        try:
            model = (await self.views.get_details(ModelKey(namespace_id, state.model_id))).model
        except ModelNotFound:
            model = None
        return AliasDetailResponse(alias=alias_view(state), model=model)

    async def list_for_name(self, namespace_id: str, name: str) -> AliasListResponse:
        states = await self.store.list_for_name(namespace_id, name)
        return AliasListResponse(
            namespace_id=namespace_id, name=name, aliases=[alias_view(state) for state in states]
        )

    async def _existing(self, namespace_id: str, name: str, alias: str) -> AliasState:
        state = await self.store.get(namespace_id, name, alias)
        if state is None:
            raise AliasNotFound(namespace_id, name, alias)
        return state

    async def _check_target(self, key: ModelKey, name: str, require_deployed: bool) -> None:
        details = await self.models.get_details(key)
        if details is None:
            raise ModelNotFound(key)
        if details.name != name:
            raise AliasNameMismatch(name, key.model_id, details.name)
        status = current_status(details)
        if require_deployed and status is not DeploymentStatus.DEPLOYED:
            raise AliasTargetNotDeployed(key.model_id, str(status))

    @asynccontextmanager
    async def _recording(
        self, action: AuditAction, namespace_id: str, name: str, alias: str, model_id: str | None
    ) -> AsyncIterator[AuditNote]:
        """The audit entry of one alias write (stored ahead, settled after; `_changed` adds what moved)."""
        target = {"name": name, "alias": alias}
        async with self.audit.recording(action, [namespace_id], model_id=model_id, target=target) as note:
            yield note

    async def _changed(
        self, before: AliasState | None, after: AliasState | None, audit_note: AuditNote
    ) -> None:
        """After a stored alias change: the history of each model concerned shows it, the audit entry says
        where the alias pointed before and after, and this process's cached details of both models go (their
        `aliases` changed: read-your-writes).

        The one place alias changes are announced.
        """
        state = after or before
        assert state is not None
        audit_note.model_id = after.model_id if after else state.model_id
        audit_note.details.update(
            model_id=after.model_id if after else None, previous_model_id=before.model_id if before else None
        )
        now = self.clock()
        for note in history_notes(before, after):
            await self.store.add_history(
                ModelKey(state.namespace_id, note.model_id), note.kind, note.message, str(uuid.uuid4()), now
            )
        # After the history notes: a GET in between must not cache details without them.
        if self.details_cache is not None:
            for model_id in {s.model_id for s in (before, after) if s is not None}:
                self.details_cache.invalidate(ModelKey(state.namespace_id, model_id))
        log.info(
            "alias changed",
            namespace_id=state.namespace_id,
            name=state.name,
            alias=state.alias,
            model_id=after.model_id if after else None,
            previous_model_id=before.model_id if before else None,
            updated_by=state.updated_by,
        )
