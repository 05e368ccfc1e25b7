"""The registry's change feed, as its consumers see it: committed changes, in commit order.

Produced by one component from MongoDB change streams (never a second write that could diverge from the
database); consumed by the watch routes, the webhook dispatcher and the API's caches.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

import msgspec


class ChangedCollection(enum.StrEnum):
    MODELS = "custom_models"
    ORG_MODELS = "org_models"
    API_KEYS = "api_keys"
    # Every model view lists its aliases: a move must reach the details caches of every API process.
    ALIASES = "model_aliases"


class ChangeOperation(enum.StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


class RegistryChange(msgspec.Struct, kw_only=True, frozen=True):
    """One committed change of one document."""

    # The change stream's resume token as an opaque string: resuming after it misses nothing.
    token: str
    collection: ChangedCollection
    operation: ChangeOperation
    # The changed document's `_id`, as a string.
    document_id: str
    # The namespace the document belongs to, where it has one (models, keys of a namespace).
    namespace_id: str | None
    # The document as committed by this change (None after a delete).
    document: dict[str, Any] | None
    # When the database committed it.
    committed_at: datetime
    # The document before a delete (pre-image), so consumers still know which model it was.
    document_before: dict[str, Any] | None = None
    # The fields an update set, with their new values (empty for inserts, replaces and deletes).
    updated_fields: dict[str, Any] = msgspec.field(default_factory=dict)


class ChangeSource(Protocol):
    """Where in-process consumers (caches, watch streams) read the feed from."""

    def subscribe(self, after: str | None = None) -> AsyncIterator[RegistryChange]:
        """Changes committed after the change whose token is `after` (None: from now on), in order."""
        ...
