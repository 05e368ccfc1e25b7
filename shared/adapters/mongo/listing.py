"""Listing a namespace's models and paging a model's history: the filters, orders and pipelines."""

from __future__ import annotations

from typing import Any

import msgspec
from beanie import SortDirection

from modelreg.shared.adapters.mongo.mapping import key_filter
from modelreg.shared.contracts import ModelKey
from modelreg.shared.model_filters import Checked, CheckedNode, to_mongo


class ModelFilter(msgspec.Struct, kw_only=True, frozen=True):
    deployed: bool | None = None
    task_type: str | None = None
    model_format: str | None = None
    name: str | None = None
    # The `filter` parameter, parsed and checked against the allow-list (shared/model_filters.py).
    expression: CheckedNode | None = None
    # The model ids of each lookup comparison in `expression` (`alias`), resolved by the service.
    lookups: dict[Checked, tuple[str, ...]] | None = None


# pymongo's 1 and -1, as Beanie's sort() is typed.
ASCENDING, DESCENDING = SortDirection.ASCENDING, SortDirection.DESCENDING

# Listing orders, each total so pages never overlap or skip: model_id breaks ties of created_at, and name and
# version have none ((namespace_id, name, version) is unique), so the name orders are the unique index's,
# read forwards or backwards.
LIST_SORTS: dict[str, list[tuple[str, SortDirection]]] = {
    "-created_at": [("created_at", DESCENDING), ("model_id", ASCENDING)],
    "created_at": [("created_at", ASCENDING), ("model_id", ASCENDING)],
    "name": [("name", ASCENDING), ("version", ASCENDING)],
    "-name": [("name", DESCENDING), ("version", DESCENDING)],
}


def listing_query(namespace_id: str, where: ModelFilter) -> dict[str, Any]:
    """The namespace's models matching every filter that is set."""
    query: dict[str, Any] = {"namespace_id": namespace_id}
    for field in ("deployed", "task_type", "model_format", "name"):
        value = getattr(where, field)
        if value is not None:
            query[field] = value
    if where.expression is not None:
        query["$and"] = [to_mongo(where.expression, where.lookups)]
    return query


def history_page_pipeline(key: ModelKey, offset: int, limit: int) -> list[dict[str, Any]]:
    """The history's length and one slice of it, newest first: only the slice leaves the database."""
    history = {"$ifNull": ["$deployment_history", []]}
    return [
        {"$match": key_filter(key)},
        {
            "$project": {
                "_id": 0,
                "total": {"$size": history},
                "page": {"$slice": [{"$reverseArray": history}, offset, limit]},
            }
        },
    ]
