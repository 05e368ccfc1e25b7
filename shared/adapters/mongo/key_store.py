"""The `api_keys` collection: records of keys, looked up by their clear prefix."""

from __future__ import annotations

from collections.abc import Sequence

from beanie import SortDirection
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from modelreg.shared.documents import ApiKeyDocument


class DuplicateKeyPrefixError(Exception):
    """Another key already uses this prefix."""


class ApiKeyStore:
    """Records of API keys; only their hashes are stored."""

    async def insert(
        self, prefix: str, key_hash: str, namespaces: Sequence[str], admin: bool
    ) -> ApiKeyDocument:
        document = ApiKeyDocument(
            prefix=prefix, key_hash=key_hash, namespaces=sorted(set(namespaces)), admin=admin
        )
        try:
            return await document.insert()
        except DuplicateKeyError:
            raise DuplicateKeyPrefixError(prefix) from None

    async def find(self, prefix: str) -> ApiKeyDocument | None:
        return await ApiKeyDocument.find_one({"prefix": prefix})

    async def list(self) -> list[ApiKeyDocument]:
        return await ApiKeyDocument.find_all().sort([("created_at", SortDirection.ASCENDING)]).to_list()

    async def revoke(self, prefix: str) -> bool:
        result = await ApiKeyDocument.find_one({"prefix": prefix}).update({"$set": {"revoked": True}})
        # Beanie types the result as any of its update responses; without upsert it is an UpdateResult.
        return isinstance(result, UpdateResult) and result.matched_count == 1
