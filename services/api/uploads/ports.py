"""What presigned uploads need from the outside world (adapters: `shared.adapters`; fakes in tests)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Protocol

from modelreg.services.api.models.upload import SpooledArchive
from modelreg.shared.adapters.storage import StagedUpload
from modelreg.shared.documents import UploadRecord, UploadState


class UploadRepository(Protocol):
    """The upload records (`shared.adapters.mongo.UploadStore`)."""

    async def insert(self, upload: UploadRecord) -> None: ...

    async def get(self, upload_id: str) -> UploadRecord | None: ...

    async def move(
        self,
        upload_id: str,
        from_states: Collection[UploadState],
        to_state: UploadState,
        *,
        not_expired_at: datetime | None = None,
        model_id: str | None = None,
    ) -> bool: ...

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]: ...


class UploadStorage(Protocol):
    """Where uploaded bytes wait for confirmation (`shared.adapters.storage.ArchiveStorage`)."""

    @property
    def uses_s3(self) -> bool: ...

    @property
    def incoming_dir(self) -> Path: ...

    def presign_put(self, key: str, content_type: str, expires_in_s: int) -> str: ...

    async def stage(self, spooled: Path, key: str) -> None: ...

    async def staged(self, key: str) -> StagedUpload | None: ...

    async def fetch_staged(self, key: str, max_bytes: int) -> tuple[Path, str, int]: ...

    async def delete_staged(self, key: str) -> None: ...


class RegisteredModel(Protocol):
    """What a registrar answers: the new model and where its archive is stored."""

    @property
    def model_id(self) -> str: ...

    @property
    def model_archive_url(self) -> str: ...


class Registrar(Protocol):
    """Registers a checked archive as a model of the upload's owner: a namespace (`namespace_id`), or every
    namespace (`None`: a shared model). `services.api.uploads.registrars.UploadRegistrar`."""

    async def check_version_free(self, namespace_id: str | None, name: str, version: str) -> None: ...

    async def register_spooled(
        self, namespace_id: str | None, upload: UploadRecord, archive: SpooledArchive
    ) -> RegisteredModel: ...
