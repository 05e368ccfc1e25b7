"""What the key service needs from the outside world (`shared.adapters.mongo.ApiKeyStore` in production;
the API wraps it in its principal cache, `services/api/auth/cache.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from modelreg.shared.documents import ApiKeyDocument


class KeyRecords(Protocol):
    async def insert(
        self, prefix: str, key_hash: str, namespaces: Sequence[str], admin: bool
    ) -> ApiKeyDocument: ...

    async def find(self, prefix: str) -> ApiKeyDocument | None: ...

    async def list(self) -> list[ApiKeyDocument]: ...

    async def revoke(self, prefix: str) -> bool: ...
