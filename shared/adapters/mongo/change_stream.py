"""MongoDB change streams as the registry's change feed (`shared/changes.py`).

One stream per database over the registry's collections, with the committed document after each change
(`updateLookup`) and, for deletes, the one before it (pre-images, enabled on `custom_models` by
`enable_pre_images`). Tokens are the streams' resume tokens (`_data`), so they survive restarts of every
process that reads them.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import OperationFailure, PyMongoError

from modelreg.shared.adapters.mongo.connection import MongoClient
from modelreg.shared.changes import ChangedCollection, ChangeOperation, RegistryChange
from modelreg.shared.documents import ModelDocument

log = structlog.get_logger("modelreg.changefeed")

WATCHED = [str(collection) for collection in ChangedCollection]
OPERATIONS = {str(operation) for operation in ChangeOperation}


class ResumeTokenRefused(Exception):
    """The server cannot resume after this token (malformed, or its history is gone)."""


def registry_change(event: Mapping[str, Any]) -> RegistryChange | None:
    """The feed's view of one change stream event; None for events the feed does not carry (drops...)."""
    operation = event.get("operationType")
    collection = (event.get("ns") or {}).get("coll")
    if operation not in OPERATIONS or collection not in WATCHED:
        return None
    document = event.get("fullDocument")
    before = event.get("fullDocumentBeforeChange")
    key = (event.get("documentKey") or {}).get("_id")
    description = event.get("updateDescription") or {}
    updated: dict[str, Any] = dict(description.get("updatedFields") or {})
    if operation == "update" and before is not None:
        # The document as this change left it: a looked-up fullDocument may already show later changes.
        document = document_after(before, description)
    known = document if document is not None else before
    wall = event.get("wallTime")
    committed_at = wall.astimezone(UTC) if isinstance(wall, datetime) else datetime.now(UTC)
    return RegistryChange(
        token=str(event["_id"]["_data"]),
        collection=ChangedCollection(collection),
        operation=ChangeOperation(operation),
        document_id=str(key),
        namespace_id=_namespace_of(known),
        document=_plain(document) if document is not None else None,
        committed_at=committed_at,
        document_before=_plain(before) if before is not None else None,
        updated_fields=_plain(updated),
    )


def document_after(before: Mapping[str, Any], description: Mapping[str, Any]) -> dict[str, Any]:
    """The pre-image with an update description applied: exactly the document this update committed."""
    after = copy.deepcopy(dict(before))
    for path in description.get("removedFields") or []:
        parent, last = _walk(after, str(path))
        if isinstance(parent, dict):
            parent.pop(last, None)
    for truncated in description.get("truncatedArrays") or []:
        parent, last = _walk(after, str(truncated.get("field", "")))
        array = _child(parent, last)
        if isinstance(array, list):
            del array[int(truncated.get("newSize", len(array))) :]
    for path, value in (description.get("updatedFields") or {}).items():
        parent, last = _walk(after, str(path), create=True)
        if isinstance(parent, dict):
            parent[last] = copy.deepcopy(value)
        elif isinstance(parent, list) and last.isdigit():
            index = int(last)
            parent.extend([None] * (index + 1 - len(parent)))
            parent[index] = copy.deepcopy(value)
    return after


def _child(parent: Any, name: str) -> Any:
    if isinstance(parent, dict):
        return parent.get(name)
    if isinstance(parent, list) and name.isdigit() and int(name) < len(parent):
        return parent[int(name)]
    return None


def _walk(document: dict[str, Any], path: str, create: bool = False) -> tuple[Any, str]:
    """The container holding the last segment of a dotted path, and that segment."""
    *parents, last = path.split(".")
    current: Any = document
    for name in parents:
        child = _child(current, name)
        if child is None and create and isinstance(current, dict):
            child = current[name] = {}
        current = child
    return current, last


def _namespace_of(document: Mapping[str, Any] | None) -> str | None:
    if document is None:
        return None
    namespace = document.get("namespace_id")
    if isinstance(namespace, str):
        return namespace
    namespaces = document.get("namespaces")  # an API key's namespaces: only a single one names it
    if isinstance(namespaces, list) and len(namespaces) == 1 and isinstance(namespaces[0], str):
        return namespaces[0]
    return None


def _plain(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document in plain Python types: BSON's Int64 as int, ObjectIds and other BSON types as text."""
    return {str(name): _plain_value(value) for name, value in document.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, list):
        return [_plain_value(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, float, datetime)):
        return value
    if isinstance(value, int):
        return int(value)  # bson.Int64 is an int subclass that msgspec does not encode
    if isinstance(value, bytes):
        return value
    return str(value)


async def enable_pre_images(client: MongoClient, database: str) -> bool:
    """Keep pre-images of `custom_models`, so a delete still says which model it removed.

    False (and a warning) where the server refuses it: the feed then still works, but a delete's change
    carries no model (it is skipped by the watch routes and webhooks).
    """
    db = client[database]
    name = ModelDocument.Settings.name
    try:
        if name not in await db.list_collection_names():
            await db.create_collection(name)
        await db.command({"collMod": name, "changeStreamPreAndPostImages": {"enabled": True}})
    except PyMongoError as exc:
        log.warning("change stream pre-images not enabled", collection=name, error=repr(exc)[:300])
        return False
    return True


class ChangeStreamCursor:
    """One open change stream; `next()` answers None when nothing more is committed right now."""

    def __init__(self, stream: AsyncChangeStream[dict[str, Any]]) -> None:
        self._stream = stream

    async def next(self) -> RegistryChange | None:
        while True:
            try:
                event = await self._stream.try_next()
            except OperationFailure as exc:
                raise ResumeTokenRefused(str(exc)) from exc
            if event is None:
                return None
            change = registry_change(event)
            if change is not None:
                return change

    @property
    def position(self) -> str | None:
        """A token after everything read so far (what to resume after)."""
        token = self._stream.resume_token
        return None if token is None else str(token["_data"])


class MongoChangeFeed:
    """Opens change streams over the registry's collections of one database."""

    def __init__(self, client: MongoClient, database: str, max_await_ms: int = 250) -> None:
        self._client = client
        self._database = database
        self._max_await_ms = max_await_ms

    @asynccontextmanager
    async def open(self, after: str | None = None) -> AsyncIterator[ChangeStreamCursor]:
        pipeline = [{"$match": {"ns.coll": {"$in": WATCHED}}}]
        try:
            stream = await self._client[self._database].watch(
                pipeline,
                full_document="updateLookup",
                full_document_before_change="whenAvailable",
                resume_after=None if after is None else {"_data": after},
                max_await_time_ms=self._max_await_ms,
            )
        except OperationFailure as exc:
            raise ResumeTokenRefused(str(exc)) from exc
        try:
            yield ChangeStreamCursor(stream)
        finally:
            try:
                await stream.close()
            except PyMongoError:
                pass
