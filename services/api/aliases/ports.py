"""What the aliases area needs: the alias store, the models' details and their views."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from modelreg.services.api.models.schemas import ModelDetailResponse
from modelreg.shared.alias_rules import AliasHistoryKind, AliasState
from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import ModelDetails


class AliasRepository(Protocol):
    """`shared.adapters.mongo.AliasStore`."""

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None: ...

    async def list_for_name(self, namespace_id: str, name: str) -> list[AliasState]: ...

    async def write(self, before: AliasState | None, after: AliasState) -> bool:
        """Compare-and-set: False when the alias is no longer as `before`."""
        ...

    async def remove(self, before: AliasState) -> bool:
        """Compare-and-set delete: False when the alias is no longer as `before`."""
        ...

    async def add_history(
        self, key: ModelKey, kind: AliasHistoryKind, message: str, event_id: str, now: datetime
    ) -> None: ...


class ModelLookup(Protocol):
    async def get_details(self, key: ModelKey) -> ModelDetails | None: ...


class ModelViews(Protocol):
    """A model's details as clients see them (`services.api.models.reads.ModelReads`)."""

    async def get_details(self, key: ModelKey) -> ModelDetailResponse: ...


class DetailsInvalidation(Protocol):
    """The details cache (`services.api.caching.details.DetailsCache`): forget one model's cached details."""

    def invalidate(self, key: ModelKey) -> None: ...
