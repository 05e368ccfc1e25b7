"""An in-memory change feed behind services/changefeed/ports.py, for fast unit tests of the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from modelreg.shared.adapters.mongo.change_stream import ResumeTokenRefused
from modelreg.shared.changes import ChangedCollection, ChangeOperation, RegistryChange


def alias_change(namespace_id: str | None) -> RegistryChange:
    """A committed move of alias `prod` of `resnet` to m2 in `namespace_id` (None: a change naming none)."""
    return RegistryChange(
        token="t-alias",
        collection=ChangedCollection.ALIASES,
        operation=ChangeOperation.UPDATE,
        document_id="1" * 24,
        namespace_id=namespace_id,
        document=None
        if namespace_id is None
        else {"namespace_id": namespace_id, "name": "resnet", "alias": "prod", "model_id": "m2"},
        committed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def token(index: int) -> str:
    return f"{index:08d}"


class FakeCursor:
    def __init__(self, feed: FakeFeed, start: int) -> None:
        self.feed = feed
        self.index = start

    async def next(self) -> RegistryChange | None:
        if self.index >= len(self.feed.changes):
            return None
        change = self.feed.changes[self.index]
        self.index += 1
        return change

    @property
    def position(self) -> str | None:
        return token(self.index) if self.index else None


class FakeFeed:
    """Committed changes in a list; tokens are their 1-based positions."""

    def __init__(self) -> None:
        self.changes: list[RegistryChange] = []
        self.opened = 0

    def commit(self, namespace_id: str = "ns", model_id: str = "m", **document: Any) -> RegistryChange:
        change = RegistryChange(
            token=token(len(self.changes) + 1),
            collection=ChangedCollection.MODELS,
            operation=ChangeOperation.UPDATE,
            document_id=f"{namespace_id}/{model_id}",
            namespace_id=namespace_id,
            document=model_document(namespace_id, model_id, **document),
            committed_at=datetime.now(UTC),
            updated_fields={"name": "renamed"},
        )
        self.changes.append(change)
        return change

    @asynccontextmanager
    async def open(self, after: str | None = None) -> AsyncIterator[FakeCursor]:
        self.opened += 1
        if after is None:
            start = len(self.changes)
        elif not after.isdigit() or int(after) > len(self.changes):
            raise ResumeTokenRefused(f"unknown token {after!r}")
        else:
            start = int(after)
        yield FakeCursor(self, start)


def model_document(namespace_id: str, model_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "namespace_id": namespace_id,
        "name": "n",
        "version": "1",
        "model_archive_url": "s3://b/a.tar.gz",
        "model_format": "onnx",
        "model_hash": "0" * 64,
        **fields,
    }
