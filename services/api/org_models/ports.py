"""What the shared-model area needs from the outside (`shared/adapters`; fakes in tests/api_fakes.py).

The namespace copies go through the models area's ports (`services/api/models/ports.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from modelreg.services.api.models.ports import ArchiveStore
from modelreg.shared.documents import OrgModelDetails


class OrgModelRepository(Protocol):
    """Shared models and which namespaces enabled them (`shared.adapters.mongo.OrgModelStore`)."""

    async def insert(self, details: OrgModelDetails) -> None:
        """Raises DuplicateModelError when a shared model has this name and version."""
        ...

    async def get(self, model_id: str) -> OrgModelDetails | None: ...

    async def list_all(self) -> list[OrgModelDetails]: ...

    async def find_name_version(self, name: str, version: str) -> str | None: ...

    async def set_deleting(self, model_id: str, deleting: bool) -> bool: ...

    async def delete(self, model_id: str) -> bool: ...

    async def enabled_namespaces(self, model_id: str) -> list[str]: ...

    async def enabled_in(self, namespace_id: str) -> set[str]: ...

    async def deployed(self, model_ids: list[str]) -> set[str]: ...


class ReadableArchiveStore(ArchiveStore, Protocol):
    """Archive storage that can also stream an archive back (`shared.adapters.storage.ArchiveStorage`)."""

    def read_chunks(self, url: str) -> AsyncIterator[bytes]:
        """Raises ArchiveNotFoundError (on the first chunk) when the archive is missing."""
        ...
