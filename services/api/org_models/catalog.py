"""Shared models at the organization level: register (multipart upload), list, get, delete, download.

`register_spooled` is the seam for any other way an archive arrives (the presigned flow's confirm, through
`services.api.uploads.registrars`): it runs the upload's checks on a spooled file and registers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import structlog

from modelreg.services.api.domain_errors import (
    ArchiveMissing,
    OrgModelInUse,
    OrgModelNotFound,
    VersionExists,
)
from modelreg.services.api.models.registration import check_archive, new_model_id, save_with_record
from modelreg.services.api.models.upload import SpooledArchive, receive_upload
from modelreg.services.api.models.upload_form import parse_form
from modelreg.services.api.org_models.ports import OrgModelRepository, ReadableArchiveStore
from modelreg.services.api.org_models.schemas import (
    OrgModelDeleteResponse,
    OrgModelDetailResponse,
    OrgModelListResponse,
    OrgModelUploadResponse,
    OrgUploadForm,
)
from modelreg.services.api.org_models.views import org_detail_view, org_list_item
from modelreg.shared.adapters.mongo import DuplicateModelError
from modelreg.shared.adapters.storage import ArchiveNotFoundError
from modelreg.shared.archives import ArchiveLimits
from modelreg.shared.contracts import ModelFormat
from modelreg.shared.documents import OrgModelDetails
from modelreg.shared.identifiers import ORG_STORAGE_NAMESPACE
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.api")


class ArchiveDownload:
    """A stored archive as a stream, its first chunk already read (so a missing archive is a 404)."""

    def __init__(self, filename: str, first: bytes, rest: AsyncIterator[bytes]) -> None:
        self.filename = filename
        self._first = first
        self._rest = rest

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._first
        async for chunk in self._rest:
            yield chunk


class OrgModelCatalog:
    def __init__(
        self,
        store: OrgModelRepository,
        storage: ReadableArchiveStore,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.storage = storage
        self.settings = settings
        self.clock = clock

    async def upload(
        self, stream: AsyncIterator[bytes], content_type: str | None, content_length: int | None
    ) -> OrgModelUploadResponse:
        received = await receive_upload(
            stream, content_type, content_length, self.storage.incoming_dir, self.settings.max_archive_bytes
        )
        try:
            form = parse_form(received.fields, OrgUploadForm)
            return await self.register_spooled(form, received.required_archive())
        finally:
            received.discard()

    async def check_version_free(self, name: str, version: str) -> None:
        """VersionExists when a shared model has this name and version."""
        existing = await self.store.find_name_version(name, version)
        if existing is not None:
            raise VersionExists(name, version, existing)

    async def register_spooled(self, form: OrgUploadForm, archive: SpooledArchive) -> OrgModelUploadResponse:
        """Check a spooled, hashed archive as the upload does, store it and register the shared model
        (multipart and presigned uploads). The spooled file is moved into storage on success."""
        spooled, sha256, size = archive.path, archive.sha256, archive.size
        await check_archive(archive, ArchiveLimits.from_settings(self.settings))
        await self.check_version_free(form.name, form.version)
        model_id = new_model_id()
        now = self.clock()

        def shared_model(url: str) -> OrgModelDetails:
            return OrgModelDetails(
                model_id=model_id,
                name=form.name,
                version=form.version,
                description=form.description,
                model_archive_url=url,
                model_format=ModelFormat(form.model_format),
                model_hash=sha256,
                framework=form.framework,
                task_type=form.task_type,
                resource_requirements=form.resource_requirements,
                archive_bytes=size,
                created_at=now,
                updated_at=now,
            )

        try:
            url = await save_with_record(
                self.storage,
                spooled,
                ORG_STORAGE_NAMESPACE,
                model_id,
                lambda url: self.store.insert(shared_model(url)),
            )
        except DuplicateModelError:
            winner = await self.store.find_name_version(form.name, form.version)
            raise VersionExists(form.name, form.version, winner) from None
        log.info(
            "shared model registered", model_id=model_id, name=form.name, version=form.version, size=size
        )
        return OrgModelUploadResponse(
            model_id=model_id, model_archive_url=url, message="Shared model registered"
        )

    async def list_models(self) -> OrgModelListResponse:
        models = await self.store.list_all()
        deployed = await self.store.deployed([m.model_id for m in models])
        org = self.settings.organization_id
        return OrgModelListResponse(
            models=[org_list_item(m, org, m.model_id in deployed) for m in models],
            total=len(models),
            organization_id=org,
        )

    async def get(self, model_id: str) -> OrgModelDetailResponse:
        details = await self._existing(model_id)
        enabled = await self.store.enabled_namespaces(model_id)
        deployed = bool(await self.store.deployed([model_id]))
        return OrgModelDetailResponse(
            model=org_detail_view(details, self.settings.organization_id, enabled, deployed)
        )

    async def delete(self, model_id: str) -> OrgModelDeleteResponse:
        """Refused (409) while a namespace has it enabled; the mark keeps enabling out meanwhile."""
        details = await self._existing(model_id)
        if not await self.store.set_deleting(model_id, True):
            raise OrgModelNotFound(model_id)  # another deletion is under way
        enabled = await self.store.enabled_namespaces(model_id)
        if enabled:
            await self.store.set_deleting(model_id, False)
            raise OrgModelInUse(model_id, enabled)
        await self.store.delete(model_id)
        try:
            await self.storage.delete(details.model_archive_url, ORG_STORAGE_NAMESPACE, model_id)
        except Exception as exc:  # the record is gone; an orphaned file is only wasted space
            log.warning("archive not deleted", url=details.model_archive_url, error=repr(exc)[:300])
        log.info("shared model deleted", model_id=model_id)
        return OrgModelDeleteResponse(model_id=model_id, message="Shared model deleted")

    async def download(self, model_id: str) -> ArchiveDownload:
        details = await self._existing(model_id)
        chunks = self.storage.read_chunks(details.model_archive_url)
        try:
            first = await anext(chunks, b"")
        except (ArchiveNotFoundError, PermissionError):
            raise ArchiveMissing(model_id) from None
        return ArchiveDownload(f"{details.name}-{details.version}.tar.gz", first, chunks)

    async def _existing(self, model_id: str) -> OrgModelDetails:
        details = await self.store.get(model_id)
        if details is None or details.deleting:
            raise OrgModelNotFound(model_id)
        return details
