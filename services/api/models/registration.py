"""Registering an uploaded model: read the stream, check the form and the archive, store both.

The archive is stored, then its record inserted; either both exist afterwards, or neither.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import structlog

from modelreg.services.api.domain_errors import ArchiveRefused, VersionExists
from modelreg.services.api.models.ports import ArchiveStore, ModelRepository
from modelreg.services.api.models.schemas import ModelUploadResponse, NamespaceUploadForm, UploadForm
from modelreg.services.api.models.upload import ReceivedUpload, SpooledArchive, receive_upload
from modelreg.services.api.models.upload_extras import UploadExtras, extras_of, with_inferred_signature
from modelreg.services.api.models.upload_form import parse_form
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.adapters.mongo import DuplicateModelError
from modelreg.shared.archives import ArchiveLimits, InvalidArchiveError, list_members
from modelreg.shared.audit import AuditAction
from modelreg.shared.contracts import DeploymentStatus, ModelFormat, ModelKey
from modelreg.shared.documents import ModelDetails
from modelreg.shared.serve_routes import model_endpoint
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.api")


def new_model_id() -> str:
    return f"model_{secrets.token_hex(12)}"


async def save_with_record(
    storage: ArchiveStore,
    spooled: Path,
    namespace_id: str,
    model_id: str,
    insert_record: Callable[[str], Awaitable[None]],
) -> str:
    """Move the archive into storage, then insert its record (given the archive's URL); returns the URL.

    Whatever stops the insert (a duplicate, a lost database, a cancelled request) removes the archive
    again: no archive is kept without its record.
    """
    url = await storage.save(spooled, namespace_id, model_id)
    try:
        await insert_record(url)
    except BaseException:
        await storage.delete(url, namespace_id, model_id)
        raise
    return url


async def check_archive(archive: SpooledArchive, limits: ArchiveLimits) -> None:
    """ArchiveRefused unless the spooled archive reads to its end within the caps (off the event loop)."""
    try:
        await asyncio.to_thread(list_members, archive.path, limits)
    except InvalidArchiveError as exc:
        raise ArchiveRefused(
            exc.reason, exc.detail, details={"filename": archive.filename, **exc.limit}
        ) from None


class ModelRegistration:
    def __init__(
        self,
        store: ModelRepository,
        storage: ArchiveStore,
        settings: Settings,
        clock: Callable[[], datetime],
        audit: Audit = NOT_AUDITED,
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.audit = audit

    async def upload(
        self,
        namespace_id: str,
        stream: AsyncIterator[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> ModelUploadResponse:
        received = await receive_upload(
            stream, content_type, content_length, self.storage.incoming_dir, self.settings.max_archive_bytes
        )
        try:
            return await self._register(namespace_id, received)
        finally:
            received.discard()

    async def _register(self, namespace_id: str, received: ReceivedUpload) -> ModelUploadResponse:
        form = parse_form(received.fields, NamespaceUploadForm)
        return await self.register_spooled(namespace_id, form, received.required_archive())

    async def check_version_free(self, namespace_id: str, name: str, version: str) -> None:
        """VersionExists when the namespace already has this name and version."""
        existing = await self.store.find_name_version(namespace_id, name, version)
        if existing is not None:
            raise VersionExists(name, version, existing)

    async def register_spooled(
        self, namespace_id: str, form: UploadForm, archive: SpooledArchive
    ) -> ModelUploadResponse:
        """Check a spooled, hashed archive and register it with `form` (multipart and presigned uploads).

        The spooled file is moved into storage on success; the caller removes it otherwise.
        """
        async with self.audit.recording(
            AuditAction.MODEL_UPLOAD,
            [namespace_id],
            target={"name": form.name, "version": form.version},
            details={"model_hash": archive.sha256, "size": archive.size},
        ) as note:
            answer = await self._register_spooled(namespace_id, form, archive)
            note.model_id = answer.model_id
            return answer

    async def _register_spooled(
        self, namespace_id: str, form: UploadForm, archive: SpooledArchive
    ) -> ModelUploadResponse:
        extras = extras_of(form)
        await check_archive(archive, ArchiveLimits.from_settings(self.settings))
        await self.check_version_free(namespace_id, form.name, form.version)
        extras = await with_inferred_signature(extras, archive.path, ModelFormat(form.model_format))

        model_id = new_model_id()
        try:
            url = await save_with_record(
                self.storage,
                archive.path,
                namespace_id,
                model_id,
                lambda url: self.store.insert_model(
                    self._new_model(namespace_id, model_id, form, url, archive.sha256, extras)
                ),
            )
        except DuplicateModelError:
            winner = await self.store.find_name_version(namespace_id, form.name, form.version)
            raise VersionExists(form.name, form.version, winner) from None
        log.info(
            "model uploaded",
            namespace_id=namespace_id,
            model_id=model_id,
            name=form.name,
            version=form.version,
            size=archive.size,
            model_hash=archive.sha256,
        )
        return ModelUploadResponse(
            model_id=model_id,
            deployment_status=str(DeploymentStatus.NOT_DEPLOYED),
            endpoint=model_endpoint(self.settings, ModelKey(namespace_id, model_id)),
            model_archive_url=url,
        )

    def _new_model(
        self,
        namespace_id: str,
        model_id: str,
        form: UploadForm,
        url: str,
        model_hash: str,
        extras: UploadExtras,
    ) -> ModelDetails:
        now = self.clock()
        return ModelDetails(
            model_id=model_id,
            namespace_id=namespace_id,
            name=form.name,
            version=form.version,
            model_archive_url=url,
            model_format=ModelFormat(form.model_format),
            model_hash=model_hash,
            framework=form.framework,
            task_type=form.task_type,
            input_schema=extras.input_schema,
            output_schema=extras.output_schema,
            tags=extras.tags,
            resource_requirements=form.resource_requirements,
            created_at=now,
            updated_at=now,
            deployment_status=DeploymentStatus.NOT_DEPLOYED,
        )
