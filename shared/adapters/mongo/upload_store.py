"""The `model_uploads` collection: presigned uploads, moved between states by compare-and-set writes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from beanie.odm.enums import SortDirection

from modelreg.shared.documents import UploadDocument, UploadRecord, UploadState

# What the cleanup takes once expired: every state but the final ones (CONFIRMING too: a confirm that died
# with its process never finishes; one still running past the expiry fails its final compare-and-set).
CLEANABLE_STATES = (
    UploadState.PENDING,
    UploadState.RECEIVING,
    UploadState.RECEIVED,
    UploadState.CONFIRMING,
)


class UploadStore:
    async def insert(self, upload: UploadRecord) -> None:
        await UploadDocument(**upload.model_dump()).insert()

    async def get(self, upload_id: str) -> UploadRecord | None:
        return await UploadDocument.find_one({"upload_id": upload_id}, projection_model=UploadRecord)

    async def move(
        self,
        upload_id: str,
        from_states: Collection[UploadState],
        to_state: UploadState,
        *,
        not_expired_at: datetime | None = None,
        model_id: str | None = None,
    ) -> bool:
        """Compare-and-set of the state: True when this call moved it (so exactly one caller wins)."""
        where: dict[str, Any] = {"upload_id": upload_id, "state": {"$in": [str(s) for s in from_states]}}
        if not_expired_at is not None:
            where["expires_at"] = {"$gt": not_expired_at}
        changes: dict[str, Any] = {"state": str(to_state)}
        if model_id is not None:
            changes["model_id"] = model_id
        result = await UploadDocument.get_pymongo_collection().update_one(where, {"$set": changes})
        return result.modified_count == 1

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        """Uploads past their expiry whose bytes may still be stored (oldest first)."""
        return (
            await UploadDocument.find(
                {"expires_at": {"$lte": now}, "state": {"$in": [str(s) for s in CLEANABLE_STATES]}}
            )
            .project(UploadRecord)
            .sort([("expires_at", SortDirection.ASCENDING)])
            .limit(limit)
            .to_list()
        )
