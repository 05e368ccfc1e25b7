"""Service layer of authentication: from a presented key to the caller's principal."""

from __future__ import annotations

from shared.adapters.mongo import ApiKeyStore
from shared.api_keys import Principal, key_matches, key_prefix


class ApiKeyAuthenticator:
    def __init__(self, store: ApiKeyStore, pepper: str) -> None:
        self.store = store
        self.pepper = pepper

    async def authenticate(self, presented: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None for anything else."""
        prefix = key_prefix(presented)
        if prefix is None:
            return None
        record = await self.store.find(prefix)
        if not key_matches(presented, record.key_hash if record else None, self.pepper):
            return None
        assert record is not None
        if record.revoked:
            return None
        return Principal(
            key_prefix=record.prefix, namespaces=frozenset(record.namespaces), admin=record.admin
        )
