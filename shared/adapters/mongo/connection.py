"""Connecting to MongoDB: the journaled client, Beanie set up, and indexes the registry no longer declares."""

from __future__ import annotations

import asyncio

import structlog
from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError

from shared.documents import DOCUMENT_MODELS, RETIRED_INDEXES
from shared.retry import retry_with_backoff
from shared.settings import Settings

log = structlog.get_logger("modelreg.mongo")

INDEX_NOT_FOUND = 27


async def connect(settings: Settings, *, server_selection_timeout_ms: int = 5_000) -> AsyncMongoClient:
    """A tz-aware client whose writes are journaled (acknowledged writes survive a crash) + Beanie set up."""
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        journal=True,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
    )
    await init_beanie(database=client[settings.mongodb_database], document_models=DOCUMENT_MODELS)
    await drop_retired_indexes()
    return client


async def drop_retired_indexes() -> None:
    """Drop indexes earlier versions created and nothing queries any more (init_beanie only adds indexes).

    Idempotent and safe to race: every process calls it at start. Without the privilege to drop an
    index, the process logs it and carries on; the index costs writes, not correctness.
    """
    for document, names in RETIRED_INDEXES.items():
        collection = document.get_pymongo_collection()
        present = await collection.index_information()
        for name in names:
            if name not in present:
                continue
            try:
                await collection.drop_index(name)
            except OperationFailure as exc:
                if exc.code == INDEX_NOT_FOUND:  # another process dropped it first
                    continue
                log.warning(
                    "retired index not dropped", collection=collection.name, index=name, error=str(exc)
                )
            else:
                log.info("retired index dropped", collection=collection.name, index=name)


async def connect_when_available(
    settings: Settings, stop: asyncio.Event, max_backoff_s: float = 10.0
) -> AsyncMongoClient:
    """connect(), retried with backoff while MongoDB is unreachable; raises Stopping once `stop` is set."""
    return await retry_with_backoff(
        lambda: connect(settings),
        operation="connect_mongodb",
        stop=stop,
        retry_on=(PyMongoError,),
        max_backoff_s=max_backoff_s,
    )


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")
