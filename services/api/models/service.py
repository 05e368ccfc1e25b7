"""Service layer of the models area: registry reads and writes, deployment requests, history."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import msgspec
import structlog
from litestar.exceptions import ValidationException

from services.api.auth.guards import model_not_found
from services.api.errors import ApiError, ConflictError, PayloadTooLargeError, ServiceUnavailableError
from services.api.models.schemas import (
    CustomModelDocument,
    DeploymentHistoryEvent,
    DeploymentHistoryResponse,
    DeploymentRequestResponse,
    ModelDeleteResponse,
    ModelDetailResponse,
    ModelListResponse,
    ModelUploadResponse,
    UploadForm,
)
from services.api.models.upload import (
    ARCHIVE_FIELD,
    FORM_OVERHEAD_BYTES,
    ReceivedUpload,
    multipart_boundary,
    read_upload,
)
from shared.adapters.kafka import CommandNotPublishedError, CommandPublisher
from shared.adapters.mongo import DuplicateModelError, ModelFilter, ModelStore, observed_from_details
from shared.adapters.storage import ArchiveStorage
from shared.archives import ArchiveLimits, InvalidArchiveError, list_members
from shared.contracts import (
    CommandType,
    DeploymentCommand,
    DeploymentStatus,
    ModelFormat,
    ModelKey,
)
from shared.deployment_rules import DesiredState, RequestOutcome, decide_request, effective_status
from shared.documents import ModelDetails, ResourceRequirementsFields, utc_now
from shared.settings import Settings

log = structlog.get_logger("modelreg.api")

# Compare-and-set rounds for a deployment request before answering 409 (other requests keep winning).
MAX_REQUEST_ROUNDS = 5
COMMAND_FOR = {DesiredState.DEPLOYED: CommandType.DEPLOY, DesiredState.NOT_DEPLOYED: CommandType.UNDEPLOY}
_FIELD_IN_ERROR = re.compile(r"at `\$\.([A-Za-z0-9_]+)`|field `([^`]+)`")


def _aware(value: datetime | None) -> datetime | None:
    # Documents written by other services may hold naive datetimes; they are UTC by MongoDB's convention.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _now_ms() -> datetime:
    # MongoDB keeps milliseconds; a value compared later (compare-and-set) must survive the round trip.
    now = utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def current_status(details: ModelDetails) -> DeploymentStatus:
    """The status the API reports: observed state, or the newer request not yet observed."""
    return effective_status(observed_from_details(details), details.desired_state, _aware(details.desired_at))


def to_view(details: ModelDetails) -> CustomModelDocument:
    raw = details.model_dump(
        exclude={
            "deployment_status",
            "deployment_message",
            "last_event_sequence",
            "observed_at",
            "desired_state",
            "desired_at",
        }
    )
    raw["created_at"] = _aware(details.created_at)
    raw["updated_at"] = _aware(details.updated_at)
    if raw["deployment_info"] is not None:
        raw["deployment_info"]["deployed_at"] = _aware(raw["deployment_info"]["deployed_at"])
    raw["deployment_status"] = str(current_status(details))
    raw["deployment_message"] = details.deployment_message
    return msgspec.convert(raw, CustomModelDocument, from_attributes=True)


def strong_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match semantics (weak comparison, as RFC 9110 prescribes for it)."""
    if not if_none_match:
        return False
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in candidates)


def new_model_id() -> str:
    return f"model_{secrets.token_hex(12)}"


def _next_offset(offset: int, returned: int, total: int) -> int | None:
    return offset + returned if offset + returned < total else None


def _form_error(message: str, field: str | None = None) -> ValidationException:
    return ValidationException(
        detail=message, extra=[{"source": "body", "key": field or "", "message": message}]
    )


def parse_form(fields: dict[str, str]) -> UploadForm:
    """The upload's text fields as a validated UploadForm, or a 422 naming the offending field."""
    if ARCHIVE_FIELD in fields:
        raise _form_error("'file' must be an uploaded file (curl -F file=@model.tar.gz)", ARCHIVE_FIELD)
    # An empty optional field means "not given" (HTML forms and curl send empty strings).
    values = {key: value for key, value in fields.items() if value != ""}
    try:
        return msgspec.convert(values, UploadForm, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _FIELD_IN_ERROR.search(message)
        field = (match.group(1) or match.group(2)) if match else None
        raise _form_error(message, field) from None


class ModelService:
    def __init__(
        self,
        store: ModelStore,
        storage: ArchiveStorage,
        publisher: CommandPublisher,
        settings: Settings,
        clock: Callable[[], datetime] = _now_ms,
    ) -> None:
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.settings = settings
        self.clock = clock

    # --- reads

    async def get_details(self, key: ModelKey) -> ModelDetailResponse:
        details = await self.store.get_details(key)
        if details is None:
            raise model_not_found(key.namespace_id, key.model_id)
        return ModelDetailResponse(model=to_view(details))

    async def get_details_encoded(self, key: ModelKey) -> tuple[bytes, str]:
        """The details body as sent, and its strong ETag."""
        body = msgspec.json.encode(await self.get_details(key))
        return body, strong_etag(body)

    async def list_models(
        self, namespace_id: str, where: ModelFilter, sort: str, offset: int, limit: int
    ) -> ModelListResponse:
        total, page = await self.store.list_models(namespace_id, where, sort, offset, limit)
        return ModelListResponse(
            models=[to_view(details) for details in page],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=_next_offset(offset, len(page), total),
        )

    async def history(self, key: ModelKey, offset: int, limit: int) -> DeploymentHistoryResponse:
        found = await self.store.history_page(key, offset, limit)
        if found is None:
            raise model_not_found(key.namespace_id, key.model_id)
        total, entries = found
        events = [
            msgspec.convert(
                {
                    **entry.model_dump(),
                    "occurred_at": _aware(entry.occurred_at),
                    "applied_at": _aware(entry.applied_at),
                },
                DeploymentHistoryEvent,
            )
            for entry in entries
        ]
        return DeploymentHistoryResponse(
            model_id=key.model_id,
            events=events,
            total=total,
            limit=limit,
            offset=offset,
            next_offset=_next_offset(offset, len(events), total),
        )

    # --- upload

    async def upload(
        self,
        namespace_id: str,
        stream: AsyncIterator[bytes],
        content_type: str | None,
        content_length: int | None,
    ) -> ModelUploadResponse:
        boundary = multipart_boundary(content_type)
        limit = self.settings.max_archive_bytes
        if content_length is not None and content_length > limit + FORM_OVERHEAD_BYTES:
            raise PayloadTooLargeError(
                f"The upload exceeds the archive limit of {limit} bytes",
                code="archive_too_large",
                details={"max_archive_bytes": limit},
            )
        received = await read_upload(stream, boundary, self.storage.incoming_dir, limit)
        try:
            return await self._register(namespace_id, received)
        finally:
            received.discard()

    async def _register(self, namespace_id: str, received: ReceivedUpload) -> ModelUploadResponse:
        form = parse_form(received.fields)
        archive = received.archive
        if archive is None:
            raise _form_error("the model archive is missing (curl -F file=@model.tar.gz)", ARCHIVE_FIELD)
        try:
            limits = ArchiveLimits(
                self.settings.max_archive_members,
                self.settings.max_unpacked_bytes,
                self.settings.max_compression_ratio,
            )
            await asyncio.to_thread(list_members, archive.path, limits)
        except InvalidArchiveError as exc:
            raise ApiError(
                f"The archive was refused: {exc.detail}",
                code=exc.reason,
                details={"filename": archive.filename, **exc.limit},
            ) from None
        existing = await self.store.find_name_version(namespace_id, form.name, form.version)
        if existing is not None:
            raise self._version_exists(form, existing)

        model_id = new_model_id()
        url = await self.storage.save(archive.path, namespace_id, model_id)
        now = self.clock()
        details = ModelDetails(
            model_id=model_id,
            namespace_id=namespace_id,
            name=form.name,
            version=form.version,
            model_archive_url=url,
            model_format=ModelFormat(form.model_format),
            model_hash=archive.sha256,
            framework=form.framework,
            task_type=form.task_type,
            resource_requirements=ResourceRequirementsFields(
                num_cpus=form.num_cpus, num_gpus=form.num_gpus, memory=form.memory_bytes
            ),
            created_at=now,
            updated_at=now,
            deployment_status=DeploymentStatus.NOT_DEPLOYED,
        )
        try:
            await self.store.insert_model(details)
        except DuplicateModelError:
            await self.storage.delete(url, namespace_id, model_id)
            winner = await self.store.find_name_version(namespace_id, form.name, form.version)
            raise self._version_exists(form, winner) from None
        except BaseException:
            # No archive without its record.
            await self.storage.delete(url, namespace_id, model_id)
            raise
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
            endpoint=None,
            model_archive_url=url,
        )

    @staticmethod
    def _version_exists(form: UploadForm, existing_model_id: str | None) -> ConflictError:
        return ConflictError(
            "A model with this name and version already exists in the namespace",
            code="model_version_exists",
            details={"name": form.name, "version": form.version, "model_id": existing_model_id},
        )

    # --- deployment requests

    async def request_deployment(
        self, key: ModelKey, desired: DesiredState
    ) -> tuple[DeploymentRequestResponse, bool]:
        """Record the wish and send the command; returns the answer and whether a command was sent."""
        for _ in range(MAX_REQUEST_ROUNDS):
            details = await self.store.get_details(key)
            if details is None:
                raise model_not_found(key.namespace_id, key.model_id)
            status = current_status(details)
            decision = decide_request(status, desired)
            if decision.outcome is RequestOutcome.UNCHANGED:
                return DeploymentRequestResponse(model_id=key.model_id, deployment_status=str(status)), False
            if decision.outcome is RequestOutcome.REFUSED:
                raise ConflictError(
                    f"The model is {status}; wait until that transition finishes",
                    code="transition_in_progress",
                    details={"deployment_status": str(status), "reason": decision.reason},
                )
            previous_at = _aware(details.desired_at)
            now = self.clock()
            recorded = await self.store.set_desired(
                key, desired, now, expected_desired_at=previous_at, now=now
            )
            if not recorded:
                continue  # another request changed the model meanwhile: decide again on fresh data
            command = self._command(key, COMMAND_FOR[desired], now)
            try:
                await self.publisher.publish(command)
            except CommandNotPublishedError:
                await self.store.set_desired(
                    key, details.desired_state, previous_at, expected_desired_at=now, now=self.clock()
                )
                raise self._broker_unavailable() from None
            after = effective_status(observed_from_details(details), desired, now)
            response = DeploymentRequestResponse(
                model_id=key.model_id, deployment_status=str(after), command_id=str(command.command_id)
            )
            return response, True
        raise ConflictError("The model changed concurrently; retry the request", code="concurrent_request")

    async def delete(self, key: ModelKey) -> ModelDeleteResponse:
        """Undeploy (by command) if anything is deployed, then remove the record and its archive."""
        details = await self.store.get_details(key)
        if details is None:
            return ModelDeleteResponse(model_id=key.model_id, deleted=False)
        undeploy_id = None
        if (
            decide_request(current_status(details), DesiredState.NOT_DEPLOYED).outcome
            is RequestOutcome.PUBLISH
        ):
            command = self._command(key, CommandType.UNDEPLOY, self.clock())
            try:
                await self.publisher.publish(command)
            except CommandNotPublishedError:
                raise self._broker_unavailable() from None
            undeploy_id = str(command.command_id)
        deleted = await self.store.delete_model(key)
        if deleted:
            try:
                await self.storage.delete(details.model_archive_url, key.namespace_id, key.model_id)
            except Exception as exc:  # the record is gone; an orphaned file is only wasted space
                log.warning("archive not deleted", url=details.model_archive_url, error=repr(exc)[:300])
        log.info(
            "model deleted",
            namespace_id=key.namespace_id,
            model_id=key.model_id,
            undeploy_command=undeploy_id,
        )
        return ModelDeleteResponse(model_id=key.model_id, deleted=deleted, undeploy_command_id=undeploy_id)

    @staticmethod
    def _command(key: ModelKey, command_type: CommandType, now: datetime) -> DeploymentCommand:
        return DeploymentCommand(
            command_id=uuid.uuid4(),
            command_type=command_type,
            namespace_id=key.namespace_id,
            model_id=key.model_id,
            requested_at=now,
        )

    @staticmethod
    def _broker_unavailable() -> ServiceUnavailableError:
        return ServiceUnavailableError(
            "The deployment command could not be sent; nothing was changed, retry later",
            code="command_not_published",
        )
