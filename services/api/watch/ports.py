"""What the watch service reads besides the change feed."""

from __future__ import annotations

from typing import Protocol

from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import ModelDetails


class WatchReads(Protocol):
    async def get_details(self, key: ModelKey) -> ModelDetails | None: ...

    async def namespace_models(self, namespace_id: str, limit: int) -> list[ModelDetails]: ...
