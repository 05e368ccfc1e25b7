"""What the models area needs from the outside world; the adapters in `shared/adapters` provide it.

Unit tests use in-memory fakes of these (`tests/api_fakes.py`); integration tests the real adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from modelreg.shared.adapters.mongo import ModelFilter
from modelreg.shared.contracts import DeploymentCommand, ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import HistoryEntry, ModelDetails
from modelreg.shared.placement import Placement


class ModelRepository(Protocol):
    """The stored models (`shared.adapters.mongo.ModelStore`)."""

    async def get_details(self, key: ModelKey) -> ModelDetails | None: ...

    async def list_models(
        self, namespace_id: str, where: ModelFilter, sort: str, offset: int, limit: int
    ) -> tuple[int, list[ModelDetails]]: ...

    async def history_page(
        self, key: ModelKey, offset: int, limit: int
    ) -> tuple[int, list[HistoryEntry]] | None: ...

    async def find_name_version(self, namespace_id: str, name: str, version: str) -> str | None: ...

    async def insert_model(self, details: ModelDetails) -> None:
        """Raises DuplicateModelError when the namespace already has this name and version."""
        ...

    async def set_desired(
        self,
        key: ModelKey,
        desired: DesiredState | None,
        desired_at: datetime | None,
        *,
        expected_desired_at: datetime | None,
        now: datetime,
        placement: Placement | None = None,
        desired_by: str | None = None,
    ) -> bool:
        """Compare-and-set on `desired_at` (with `placement`: also the desired cluster and failover;
        `desired_by`, the requesting key prefix, in the same write); False when the model changed since
        (or is gone)."""
        ...

    async def update_tags(
        self, key: ModelKey, to_set: Mapping[str, str], to_remove: Sequence[str], now: datetime
    ) -> ModelDetails | None:
        """Set and remove tags key by key in one update; the model afterwards, None when it is gone."""
        ...

    async def delete_model(self, key: ModelKey) -> bool:
        """Removes the model and its aliases (none may point at a deleted model)."""
        ...


class ArchiveStore(Protocol):
    """Where uploaded archives are kept (`shared.adapters.storage.ArchiveStorage`)."""

    @property
    def incoming_dir(self) -> Path: ...

    async def save(self, spooled: Path, namespace_id: str, model_id: str) -> str:
        """Moves the spooled file into place; returns its URL."""
        ...

    async def delete(self, url: str, namespace_id: str, model_id: str) -> None: ...


class ArchiveReader(Protocol):
    """Reading a stored archive back (`shared.adapters.storage.ArchiveStorage`)."""

    async def archive_size(self, url: str) -> int:
        """Raises FileNotFoundError when missing, PermissionError outside the readable roots or bucket."""
        ...

    def read_chunks(self, url: str) -> AsyncIterator[bytes]:
        """Raises FileNotFoundError (on the first chunk) when the archive is missing."""
        ...


class CommandSender(Protocol):
    """The deploy/undeploy commands' way to the bridge (`shared.adapters.kafka.CommandPublisher`)."""

    async def publish(self, command: DeploymentCommand) -> None:
        """Raises CommandNotPublishedError when the broker did not take it."""
        ...


class AliasIndex(Protocol):
    """Which aliases point at which models (`shared.adapters.mongo.AliasStore`); model views show them."""

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]:
        """model_id → its aliases, sorted, for the models that have any."""
        ...

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]:
        """The ids of the namespace's models one of `aliases` points at (the list filter's `alias`)."""
        ...
