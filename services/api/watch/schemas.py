"""Bodies of the watch stream's events (each the `data:` of one server-sent event, as JSON)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from modelreg.services.api.models.schemas import CustomModelDocument


class ChangeInfo(msgspec.Struct, kw_only=True):
    """What happened: the change's kind and, for deployment changes, the applied event."""

    type: str
    namespace_id: str
    model_id: str
    committed_at: datetime
    event_type: str | None = None
    sequence: int | None = None
    message: str | None = None
    endpoint: str | None = None
    deployment_status: str | None = None
    requested_by: str | None = None


class ChangeEvent(msgspec.Struct, kw_only=True):
    """`event: change` — the model after the change (null once deleted) and what happened."""

    change: ChangeInfo
    model: CustomModelDocument | None


class ModelSnapshot(msgspec.Struct, kw_only=True):
    """`event: snapshot` of a model's watch: the model as the details route answers it."""

    success: bool = True
    model: CustomModelDocument


class NamespaceSnapshot(msgspec.Struct, kw_only=True):
    """`event: snapshot` of a namespace's watch: its models (newest first, at most the limit)."""

    success: bool = True
    namespace_id: str
    models: list[CustomModelDocument]
    truncated: bool = False


class WatchMessage(msgspec.Struct, kw_only=True, frozen=True):
    """One server-sent event as the service produces it (the controller encodes it)."""

    event: str | None = None
    id: str | None = None
    data: bytes | None = None
    comment: str | None = None
