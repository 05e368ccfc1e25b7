"""Service layer of API keys: creating, listing and revoking them, and authenticating a presented key."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.services.keys.ports import KeyRecords
from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.mongo import ApiKeyStore, AuditStore, DuplicateKeyPrefixError
from modelreg.shared.api_keys import Principal, generate_key, key_matches, key_prefix
from modelreg.shared.audit import AuditAction
from modelreg.shared.documents import ApiKeyDocument
from modelreg.shared.identifiers import ID_RULE, is_valid_id
from modelreg.shared.settings import Settings

T = TypeVar("T")

# A fresh prefix collides with an existing one about once in 2**48 draws; retrying is enough.
PREFIX_ATTEMPTS = 3


class InvalidKeyRequest(ValueError):
    pass


class KeyService:
    def __init__(self, store: KeyRecords, pepper: str, audit: Audit = NOT_AUDITED) -> None:
        self.store = store
        self.pepper = pepper
        self.audit = audit

    async def create(self, namespaces: Sequence[str], admin: bool = False) -> tuple[str, ApiKeyDocument]:
        """A new key (returned once, never stored) and its record; recorded in its namespaces' audit trail."""
        async with self.audit.recording(
            AuditAction.KEY_CREATE, sorted(set(namespaces)), target={"admin": admin}
        ) as note:
            key, record = await self._create(namespaces, admin)
            note.target["key_prefix"] = record.prefix
            return key, record

    async def _create(self, namespaces: Sequence[str], admin: bool) -> tuple[str, ApiKeyDocument]:
        bad = [ns for ns in namespaces if not is_valid_id(ns)]
        if bad:
            raise InvalidKeyRequest(f"invalid namespace id(s) {', '.join(map(repr, bad))}: {ID_RULE}")
        if not namespaces and not admin:
            raise InvalidKeyRequest("a key needs at least one --namespace, or --admin")
        for attempt in range(PREFIX_ATTEMPTS):
            generated = generate_key(self.pepper)
            try:
                record = await self.store.insert(generated.prefix, generated.key_hash, namespaces, admin)
            except DuplicateKeyPrefixError:
                if attempt == PREFIX_ATTEMPTS - 1:
                    raise
                continue
            return generated.key, record
        raise AssertionError("unreachable")

    async def list(self) -> list[ApiKeyDocument]:
        return await self.store.list()

    async def revoke(self, prefix: str) -> bool:
        record = await self.store.find(prefix)
        namespaces = record.namespaces if record is not None else []
        async with self.audit.recording(
            AuditAction.KEY_REVOKE, namespaces, target={"key_prefix": prefix}
        ) as note:
            revoked = await self.store.revoke(prefix)
            note.details["revoked"] = revoked
            return revoked

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

    async def ensure_dev_key(self, key_file: Path) -> str:
        """The development admin key kept in `key_file`, created (again) when missing or no longer valid."""
        if key_file.is_file():
            key = key_file.read_text().strip()
            if await self.authenticate(key) is not None:
                return key
        key, _ = await self.create([], admin=True)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key


async def with_key_service(settings: Settings, action: Callable[[KeyService], Awaitable[T]]) -> T:
    """Run `action(KeyService)` with a MongoDB connection, for the command line."""
    client = await mongo.connect(settings)
    try:
        return await action(KeyService(ApiKeyStore(), settings.api_key_pepper, Audit(AuditStore())))
    finally:
        await client.close()


def dev_key_banner(key: str, key_file: Path) -> str:
    return "\n".join(
        [
            f"  API key        {key}",
            f"                 (admin, every namespace; kept in {key_file})",
            f"  export MODELREG_KEY=$(cat {key_file})",
            '  curl -H "Authorization: Bearer $MODELREG_KEY" ...   (see docs/api.md)',
            "",
        ]
    )
