"""Presigned uploads: create (where to PUT), receive (the registry's own signed URL), confirm, clean up.

An upload moves pending → (receiving → received, on filesystem storage) → confirming → confirmed | failed by
compare-and-set writes, so each URL takes one archive and each upload makes at most one model. Confirming
runs the multipart upload's own registration (hash, archive caps, name+version unique). Expired uploads that
never became a model lose their stored bytes in `cleanup_expired` (run periodically by the API) and are kept
as `expired` until the TTL index removes their record.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TypedDict
from urllib.parse import quote, urlencode

import msgspec
import structlog

from modelreg.services.api.domain_errors import (
    DomainError,
    InvalidUploadSignature,
    UnsupportedUpload,
    UploadAlreadyUsed,
    UploadExpired,
    UploadMismatch,
    UploadNotFound,
    UploadNotReady,
    UploadTooLarge,
)
from modelreg.services.api.models.schemas import ModelFormatName
from modelreg.services.api.models.upload import SpooledArchive
from modelreg.services.api.uploads.ports import RegisteredModel, Registrar, UploadRepository, UploadStorage
from modelreg.services.api.uploads.schemas import (
    ConfirmModelUploadRequest,
    ConfirmModelUploadResponse,
    CreateModelUploadRequest,
    ModelPresignedURLResponse,
    OrgConfirmModelUploadResponse,
    OrgModelPresignedURLResponse,
    UploadReceivedResponse,
)
from modelreg.shared.adapters.storage import ArchiveTooLargeError, spool, staging_key
from modelreg.shared.contracts import ModelFormat
from modelreg.shared.documents import ResourceRequirementsFields, UploadRecord, UploadState
from modelreg.shared.settings import Settings
from modelreg.shared.upload_signing import SignatureCheck, check_upload_signature, upload_signature

log = structlog.get_logger("modelreg.api")

REQUIRED_CONTENT_TYPE = "application/gzip"
UPLOAD_ROUTE = "/v1/uploads/{upload_id}"
CLEANUP_BATCH = 100
FINAL_STATES = (UploadState.CONFIRMED, UploadState.FAILED)


class Owner(msgspec.Struct, frozen=True):
    """Whose model an upload becomes: a namespace's, or a shared one (`namespace_id` None)."""

    namespace_id: str | None


class CreatedUpload(TypedDict):
    """What both presigned-URL answers say of a new upload; each adds its owner (namespace or org)."""

    upload_id: str
    presigned_url: str
    required_content_type: str
    s3_key: str
    expires_at: datetime
    name: str
    version: str
    model_format: ModelFormatName


def new_upload_id() -> str:
    return f"upload_{secrets.token_hex(12)}"


def media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        f"The archive exceeds the limit of {limit} bytes",
        code="archive_too_large",
        details={"max_archive_bytes": limit},
    )


class UploadService:
    def __init__(
        self,
        store: UploadRepository,
        storage: UploadStorage,
        registrar: Registrar,
        settings: Settings,
        signing_key: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.storage = storage
        self.registrar = registrar
        self.settings = settings
        self.signing_key = signing_key
        self.clock = clock

    # --- step 1: announce the upload ---------------------------------------------------------------------

    async def create(
        self, namespace_id: str, request: CreateModelUploadRequest, request_base_url: str
    ) -> ModelPresignedURLResponse:
        created = await self._create(namespace_id, request, request_base_url)
        return ModelPresignedURLResponse(**created, namespace_id=namespace_id)

    async def create_shared(
        self, request: CreateModelUploadRequest, request_base_url: str
    ) -> OrgModelPresignedURLResponse:
        """The same upload for a shared (org-level) model: confirmed with `confirm_shared`."""
        created = await self._create(None, request, request_base_url)
        return OrgModelPresignedURLResponse(**created, organization_id=self.settings.organization_id)

    async def _create(
        self, namespace_id: str | None, request: CreateModelUploadRequest, request_base_url: str
    ) -> CreatedUpload:
        limit = self.settings.max_archive_bytes
        if request.file_size_bytes is not None and request.file_size_bytes > limit:
            raise too_large(limit)
        await self.registrar.check_version_free(namespace_id, request.name, request.version)
        upload_id = new_upload_id()
        key = staging_key(upload_id)
        now = self.clock()
        expires_at = now + timedelta(seconds=request.presigned_url_expiration)
        if self.storage.uses_s3:
            url = self.storage.presign_put(key, REQUIRED_CONTENT_TYPE, request.presigned_url_expiration)
        else:
            url = self._signed_url(upload_id, int(expires_at.timestamp()), request_base_url)
        requirements = request.resource_requirements
        upload = UploadRecord(
            upload_id=upload_id,
            namespace_id=namespace_id,
            name=request.name,
            version=request.version,
            model_format=ModelFormat(request.model_format),
            description=request.description,
            framework=request.framework,
            task_type=request.task_type,
            resource_requirements=(
                ResourceRequirementsFields(**msgspec.structs.asdict(requirements))
                if requirements is not None
                else ResourceRequirementsFields()
            ),
            file_size_bytes=request.file_size_bytes,
            storage_key=key,
            content_type=REQUIRED_CONTENT_TYPE,
            created_at=now,
            expires_at=expires_at,
        )
        await self.store.insert(upload)
        log.info("upload created", namespace_id=namespace_id, upload_id=upload_id, expires_at=expires_at)
        return CreatedUpload(
            upload_id=upload_id,
            presigned_url=url,
            required_content_type=upload.content_type,
            s3_key=key,
            expires_at=expires_at,
            name=request.name,
            version=request.version,
            model_format=request.model_format,
        )

    def _signed_url(self, upload_id: str, expires: int, request_base_url: str) -> str:
        base = (self.settings.api_public_url or request_base_url).rstrip("/")
        query = urlencode(
            {"expires": expires, "signature": upload_signature(self.signing_key, upload_id, expires)}
        )
        return f"{base}{UPLOAD_ROUTE.format(upload_id=quote(upload_id, safe=''))}?{query}"

    # --- step 2 (filesystem storage): the registry's own signed upload URL ------------------------------

    async def receive(
        self,
        upload_id: str,
        expires: str | None,
        signature: str | None,
        content_type: str | None,
        content_length: int | None,
        stream: AsyncIterator[bytes],
    ) -> UploadReceivedResponse:
        now = self.clock()
        check = check_upload_signature(self.signing_key, upload_id, expires, signature, now.timestamp())
        if check is SignatureCheck.INVALID or self.storage.uses_s3:
            raise InvalidUploadSignature()
        if check is SignatureCheck.EXPIRED:
            raise UploadExpired(upload_id)
        if media_type(content_type) != REQUIRED_CONTENT_TYPE:
            raise UnsupportedUpload(
                f"The upload must be sent with Content-Type: {REQUIRED_CONTENT_TYPE}",
                code="wrong_content_type",
                details={"required_content_type": REQUIRED_CONTENT_TYPE},
            )
        limit = self.settings.max_archive_bytes
        if content_length is not None and content_length > limit:
            raise too_large(limit)
        if not await self.store.move(
            upload_id, [UploadState.PENDING], UploadState.RECEIVING, not_expired_at=now
        ):
            raise await self._unavailable(upload_id, now)
        upload = await self.store.get(upload_id)
        try:
            assert upload is not None
            path, digest, size = await spool(stream, self.storage.incoming_dir, limit)
            try:
                await self.storage.stage(path, upload.storage_key)
            finally:
                path.unlink(missing_ok=True)
        except ArchiveTooLargeError:
            await self.store.move(upload_id, [UploadState.RECEIVING], UploadState.PENDING)
            raise too_large(limit) from None
        except BaseException:
            # A broken or slow connection: the URL stays usable until it expires.
            await self.store.move(upload_id, [UploadState.RECEIVING], UploadState.PENDING)
            raise
        await self.store.move(upload_id, [UploadState.RECEIVING], UploadState.RECEIVED)
        log.info("upload received", upload_id=upload_id, size=size, sha256=digest)
        return UploadReceivedResponse(upload_id=upload_id, size_bytes=size, sha256=digest)

    async def _unavailable(
        self, upload_id: str, now: datetime, confirming: Owner | None = None
    ) -> DomainError:
        """Why an upload cannot be used now: gone, expired, already used, or busy. `confirming`: the owner
        the caller confirms for (its uploads only), or None when receiving the bytes."""
        upload = await self.store.get(upload_id)
        if upload is None or (confirming is not None and upload.namespace_id != confirming.namespace_id):
            return UploadNotFound(upload_id)
        if upload.state in FINAL_STATES:
            return UploadAlreadyUsed(upload_id, str(upload.state), upload.model_id)
        if upload.state is UploadState.EXPIRED or upload.expires_at <= now:
            return UploadExpired(upload_id)
        if upload.state is UploadState.RECEIVED and confirming is None:
            return UploadAlreadyUsed(upload_id, str(upload.state))
        if upload.state is UploadState.PENDING:
            return UploadNotReady(
                upload_id,
                "Nothing was uploaded yet: PUT the archive to the upload URL",
                "upload_not_received",
            )
        return UploadNotReady(
            upload_id, "The archive is still being received or confirmed; retry shortly", "upload_in_progress"
        )

    # --- step 3: confirm ---------------------------------------------------------------------------------

    async def confirm(
        self, namespace_id: str, upload_id: str, request: ConfirmModelUploadRequest | None
    ) -> ConfirmModelUploadResponse:
        result = await self._confirm(Owner(namespace_id), upload_id, request)
        return ConfirmModelUploadResponse(
            upload_id=upload_id,
            model_id=result.model_id,
            validation_status="passed",
            s3_archive_url=result.model_archive_url,
            namespace_id=namespace_id,
            message="The archive passed the checks and the model was created",
        )

    async def confirm_shared(
        self, upload_id: str, request: ConfirmModelUploadRequest | None
    ) -> OrgConfirmModelUploadResponse:
        result = await self._confirm(Owner(None), upload_id, request)
        return OrgConfirmModelUploadResponse(
            upload_id=upload_id,
            model_id=result.model_id,
            validation_status="passed",
            s3_archive_url=result.model_archive_url,
            message="The archive passed the checks and the shared model was created",
        )

    async def _confirm(
        self, owner: Owner, upload_id: str, request: ConfirmModelUploadRequest | None
    ) -> RegisteredModel:
        namespace_id = owner.namespace_id
        now = self.clock()
        upload = await self.store.get(upload_id)
        if upload is None or upload.namespace_id != namespace_id:
            raise UploadNotFound(upload_id)
        ready = (UploadState.RECEIVED,) if not self.storage.uses_s3 else (UploadState.PENDING,)
        if upload.state not in ready or upload.expires_at <= now:
            raise await self._unavailable(upload_id, now, owner)
        staged = await self.storage.staged(upload.storage_key)
        if staged is None:
            raise UploadNotReady(
                upload_id,
                "Nothing was uploaded yet: PUT the archive to the upload URL",
                "upload_not_received",
            )
        if not await self.store.move(upload_id, ready, UploadState.CONFIRMING, not_expired_at=now):
            raise await self._unavailable(upload_id, now, owner)
        try:
            self._check_announced(upload, staged.size, staged.content_type, staged.etag, request)
            result = await self._register(upload, namespace_id)
        except DomainError:
            await self.store.move(upload_id, [UploadState.CONFIRMING], UploadState.FAILED)
            await self.storage.delete_staged(upload.storage_key)
            raise
        except BaseException:
            # Not the archive's fault (e.g. storage or MongoDB away): the upload may be confirmed again.
            await self.store.move(upload_id, [UploadState.CONFIRMING], ready[0])
            raise
        await self.store.move(
            upload_id, [UploadState.CONFIRMING], UploadState.CONFIRMED, model_id=result.model_id
        )
        await self.storage.delete_staged(upload.storage_key)
        log.info("upload confirmed", namespace_id=namespace_id, upload_id=upload_id, model_id=result.model_id)
        return result

    def _check_announced(
        self,
        upload: UploadRecord,
        size: int,
        content_type: str | None,
        etag: str | None,
        request: ConfirmModelUploadRequest | None,
    ) -> None:
        limit = self.settings.max_archive_bytes
        if size > limit:
            raise too_large(limit)
        if content_type is not None and media_type(content_type) != upload.content_type:
            raise UploadMismatch(
                f"The archive was stored with Content-Type {content_type!r}, not {upload.content_type!r}",
                code="upload_content_type_mismatch",
                details={"required_content_type": upload.content_type, "content_type": content_type},
            )
        expected = [upload.file_size_bytes, request.file_size_bytes if request else None]
        if any(announced is not None and announced != size for announced in expected):
            raise UploadMismatch(
                f"The uploaded archive has {size} bytes, not the announced size",
                code="upload_size_mismatch",
                details={"size_bytes": size, "file_size_bytes": [e for e in expected if e is not None]},
            )
        if request and request.etag and etag and request.etag.strip('"') != etag:
            raise UploadMismatch(
                "The uploaded archive's ETag differs from the one given",
                code="upload_etag_mismatch",
                details={"etag": etag},
            )

    async def _register(self, upload: UploadRecord, namespace_id: str | None) -> RegisteredModel:
        limit = self.settings.max_archive_bytes
        try:
            path, digest, size = await self.storage.fetch_staged(upload.storage_key, limit)
        except ArchiveTooLargeError:
            raise too_large(limit) from None
        archive = SpooledArchive(path=path, sha256=digest, size=size, filename=f"{upload.upload_id}.tar.gz")
        try:
            return await self.registrar.register_spooled(namespace_id, upload, archive)
        finally:
            path.unlink(missing_ok=True)

    # --- abandoned uploads -------------------------------------------------------------------------------

    async def cleanup_expired(self) -> int:
        """Remove the stored bytes of expired uploads that never became a model; returns how many."""
        now = self.clock()
        removed = 0
        while True:
            batch = await self.store.expired(now, CLEANUP_BATCH)
            for upload in batch:
                await self.storage.delete_staged(upload.storage_key)
                if await self.store.move(upload.upload_id, [upload.state], UploadState.EXPIRED):
                    removed += 1
                    log.info("expired upload removed", upload_id=upload.upload_id, state=str(upload.state))
            if len(batch) < CLEANUP_BATCH:
                return removed
