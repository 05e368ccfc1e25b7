"""Reads of whole namespaces for the watch routes' snapshots."""

from __future__ import annotations

from beanie import SortDirection

from modelreg.shared.documents import ModelDetails, ModelDocument


async def namespace_models(namespace_id: str, limit: int) -> list[ModelDetails]:
    """The namespace's models (at most `limit`), newest first, without their history."""
    found = ModelDocument.find({"namespace_id": namespace_id}, projection_model=ModelDetails)
    found = found.sort(
        [("created_at", SortDirection.DESCENDING), ("model_id", SortDirection.ASCENDING)]
    ).limit(limit)
    return await found.to_list()
