"""Whole databases, without Beanie: dropping the throwaway database of a test stack (`services.testing`)."""

from __future__ import annotations

from pymongo import MongoClient


def drop_database(mongodb_url: str, database: str, *, timeout_ms: int = 5_000) -> None:
    """Drop `database` (a blocking call; nothing happens when it does not exist)."""
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.drop_database(database)
    finally:
        client.close()
