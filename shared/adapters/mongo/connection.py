"""Connecting to MongoDB: the journaled client with Beanie set up, retried while the server is away."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeAlias

import pymongo
from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from modelreg.shared.documents import DOCUMENT_MODELS, LIST_INDEXES, RETIRED_INDEXES, ModelDocument
from modelreg.shared.retry import retry_with_backoff
from modelreg.shared.settings import Settings

# Documents come back as plain dicts (the client's default document class).
MongoClient: TypeAlias = AsyncMongoClient[dict[str, Any]]


async def connect(settings: Settings, *, server_selection_timeout_ms: int = 5_000) -> MongoClient:
    """A tz-aware client whose writes are journaled (acknowledged writes survive a crash) + Beanie set up."""
    client: MongoClient = AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        journal=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
    )
    database = client[settings.mongodb_database]
    await init_beanie(database=database, document_models=DOCUMENT_MODELS)
    # Beanie keys indexes by their field names only, so it would keep one of two indexes that differ in a
    # direction (namespace_created / namespace_created_asc); these are created here, by name.
    await database[ModelDocument.Settings.name].create_indexes(LIST_INDEXES)
    await drop_retired_indexes(database)
    return client


async def drop_retired_indexes(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Drop the indexes no query uses any more (RETIRED_INDEXES) where an earlier version left them."""
    for collection_name, names in RETIRED_INDEXES.items():
        collection = database[collection_name]
        present = {index["name"] async for index in await collection.list_indexes()}
        for name in names:
            if name in present:
                with contextlib.suppress(OperationFailure):  # another process dropped it first
                    await collection.drop_index(name)


async def connect_when_available(
    settings: Settings, stop: asyncio.Event, max_backoff_s: float = 10.0
) -> MongoClient:
    """connect(), retried with backoff while MongoDB is unreachable; raises Stopping once `stop` is set."""
    return await retry_with_backoff(
        lambda: connect(settings),
        operation="connect_mongodb",
        stop=stop,
        retry_on=(PyMongoError,),
        max_backoff_s=max_backoff_s,
    )


async def ping(client: MongoClient, timeout_s: float | None = None) -> None:
    """Raise a PyMongoError unless MongoDB answers (within `timeout_s`, server selection included)."""
    if timeout_s is None:
        await client.admin.command("ping")
        return
    # pymongo's client-side operation timeout bounds the whole call, waiting for a server included.
    with pymongo.timeout(timeout_s):
        await client.admin.command("ping")
