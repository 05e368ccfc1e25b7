"""In-memory fakes of the API's ports (`services/api/models/ports.py`, `services/api/uploads/ports.py`).

They keep the contracts the real adapters keep: the store's unique (namespace, name, version), its
compare-and-set on `desired_at`, and the exceptions the service handles.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from modelreg.shared.adapters.kafka import CommandNotPublishedError
from modelreg.shared.adapters.mongo import DuplicateModelError, ModelFilter
from modelreg.shared.adapters.mongo.upload_store import CLEANABLE_STATES
from modelreg.shared.adapters.storage import ArchiveTooLargeError, StagedUpload
from modelreg.shared.audit import AuditAction, AuditEntry, AuditOutcome, AuditQuery
from modelreg.shared.contracts import DeploymentCommand, ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import HistoryEntry, ModelDetails, OrgModelDetails, UploadRecord, UploadState
from modelreg.shared.placement import Placement


class FakeModelStore:
    def __init__(self) -> None:
        self.models: dict[ModelKey, ModelDetails] = {}
        self.history: dict[ModelKey, list[HistoryEntry]] = {}
        # Runs inside set_desired before its compare: where a test lets another request win the race.
        self.before_set_desired: Callable[[ModelKey], Awaitable[None]] | None = None
        # Runs inside insert_model before its uniqueness check: a racing upload, or a failing database.
        self.before_insert: Callable[[ModelDetails], Awaitable[None]] | None = None

    def add(self, details: ModelDetails) -> ModelDetails:
        self.models[ModelKey(details.namespace_id, details.model_id)] = details
        return details

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        found = self.models.get(key)
        return None if found is None else found.model_copy(deep=True)

    async def list_models(
        self, namespace_id: str, where: ModelFilter, sort: str, offset: int, limit: int
    ) -> tuple[int, list[ModelDetails]]:
        matching = [
            d
            for d in self.models.values()
            if d.namespace_id == namespace_id
            and all(
                getattr(where, field) is None or getattr(d, field) == getattr(where, field)
                for field in ("deployed", "task_type", "model_format", "name")
            )
        ]
        matching.sort(key=lambda d: (d.created_at, d.model_id), reverse=sort == "-created_at")
        return len(matching), matching[offset : offset + limit]

    async def history_page(
        self, key: ModelKey, offset: int, limit: int
    ) -> tuple[int, list[HistoryEntry]] | None:
        if key not in self.models:
            return None
        newest_first = list(reversed(self.history.get(key, [])))
        return len(newest_first), newest_first[offset : offset + limit]

    async def find_name_version(self, namespace_id: str, name: str, version: str) -> str | None:
        return next(
            (
                d.model_id
                for d in self.models.values()
                if (d.namespace_id, d.name, d.version) == (namespace_id, name, version)
            ),
            None,
        )

    async def insert_model(self, details: ModelDetails) -> None:
        if self.before_insert is not None:
            await self.before_insert(details)
        if await self.find_name_version(details.namespace_id, details.name, details.version):
            raise DuplicateModelError(f"{details.name} {details.version}")
        self.add(details.model_copy(deep=True))

    async def set_desired(
        self,
        key: ModelKey,
        desired: DesiredState | None,
        desired_at: datetime | None,
        *,
        expected_desired_at: datetime | None,
        now: datetime,
        placement: Placement | None = None,
        desired_by: str | None = None,
    ) -> bool:
        if self.before_set_desired is not None:
            await self.before_set_desired(key)
        current = self.models.get(key)
        if current is None or current.desired_at != expected_desired_at:
            return False
        update: dict[str, Any] = {
            "desired_state": desired,
            "desired_at": desired_at,
            "desired_by": desired_by,
            "updated_at": now,
        }
        if placement is not None:
            update["desired_cluster"] = placement.cluster
            if placement.failover is not None:
                update["failover"] = placement.failover
        self.models[key] = current.model_copy(update=update)
        return True

    async def update_tags(
        self, key: ModelKey, to_set: Mapping[str, str], to_remove: Sequence[str], now: datetime
    ) -> ModelDetails | None:
        current = self.models.get(key)
        if current is None:
            return None
        tags = {k: v for k, v in {**current.tags, **to_set}.items() if k not in to_remove}
        self.models[key] = current.model_copy(update={"tags": tags, "updated_at": now})
        return self.models[key]

    async def delete_model(self, key: ModelKey) -> bool:
        return self.models.pop(key, None) is not None


class FakeArchiveStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.deleted: list[str] = []
        self.fail_delete: Exception | None = None

    @property
    def incoming_dir(self) -> Path:
        return self.root / ".incoming"

    def stored(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*/*.tar.gz"))

    async def save(self, spooled: Path, namespace_id: str, model_id: str) -> str:
        target = self.root / namespace_id / f"{model_id}.tar.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(spooled, target)
        return target.as_uri()

    async def delete(self, url: str, namespace_id: str, model_id: str) -> None:
        if self.fail_delete is not None:
            raise self.fail_delete
        (self.root / namespace_id / f"{model_id}.tar.gz").unlink(missing_ok=True)
        self.deleted.append(url)


class FakeCommandPublisher:
    def __init__(self) -> None:
        self.published: list[DeploymentCommand] = []
        self.broker_down = False

    async def publish(self, command: DeploymentCommand) -> None:
        if self.broker_down:
            raise CommandNotPublishedError("broker down (fake)")
        self.published.append(command)


class FakeOrgModelStore:
    """In memory `OrgModelStore`: shared models, and their copies read from a FakeModelStore."""

    def __init__(self, models: FakeModelStore) -> None:
        self.shared: dict[str, OrgModelDetails] = {}
        self.models = models

    async def insert(self, details: OrgModelDetails) -> None:
        if await self.find_name_version(details.name, details.version):
            raise DuplicateModelError(f"{details.name} {details.version}")
        self.shared[details.model_id] = details.model_copy(deep=True)

    async def get(self, model_id: str) -> OrgModelDetails | None:
        found = self.shared.get(model_id)
        return None if found is None else found.model_copy(deep=True)

    async def list_all(self) -> list[OrgModelDetails]:
        return sorted(
            (m for m in self.shared.values() if not m.deleting), key=lambda m: m.created_at, reverse=True
        )

    async def find_name_version(self, name: str, version: str) -> str | None:
        return next(
            (m.model_id for m in self.shared.values() if (m.name, m.version) == (name, version)), None
        )

    async def set_deleting(self, model_id: str, deleting: bool) -> bool:
        current = self.shared.get(model_id)
        if current is None or current.deleting == deleting:
            return False
        self.shared[model_id] = current.model_copy(update={"deleting": deleting})
        return True

    async def delete(self, model_id: str) -> bool:
        return self.shared.pop(model_id, None) is not None

    async def enabled_namespaces(self, model_id: str) -> list[str]:
        return sorted(d.namespace_id for d in self.models.models.values() if d.org_model_id == model_id)

    async def enabled_in(self, namespace_id: str) -> set[str]:
        return {
            d.model_id
            for d in self.models.models.values()
            if d.namespace_id == namespace_id and d.org_model_id is not None
        }

    async def deployed(self, model_ids: list[str]) -> set[str]:
        return {d.model_id for d in self.models.models.values() if d.org_model_id in model_ids and d.deployed}


class FakeUploadStore:
    """The upload records, with the compare-and-set moves of `shared.adapters.mongo.UploadStore`."""

    def __init__(self) -> None:
        self.uploads: dict[str, UploadRecord] = {}

    async def insert(self, upload: UploadRecord) -> None:
        self.uploads[upload.upload_id] = upload.model_copy(deep=True)

    async def get(self, upload_id: str) -> UploadRecord | None:
        found = self.uploads.get(upload_id)
        return None if found is None else found.model_copy(deep=True)

    async def move(
        self,
        upload_id: str,
        from_states: Collection[UploadState],
        to_state: UploadState,
        *,
        not_expired_at: datetime | None = None,
        model_id: str | None = None,
    ) -> bool:
        upload = self.uploads.get(upload_id)
        if upload is None or upload.state not in from_states:
            return False
        if not_expired_at is not None and upload.expires_at <= not_expired_at:
            return False
        upload.state = to_state
        if model_id is not None:
            upload.model_id = model_id
        return True

    async def expired(self, now: datetime, limit: int) -> list[UploadRecord]:
        found = [u for u in self.uploads.values() if u.expires_at <= now and u.state in CLEANABLE_STATES]
        return [u.model_copy(deep=True) for u in sorted(found, key=lambda u: u.expires_at)[:limit]]


class FakeUploadStorage(FakeArchiveStorage):
    """Filesystem-like staging under `root/.uploads` (the registry's own signed URLs)."""

    uses_s3 = False

    def presign_put(self, key: str, content_type: str, expires_in_s: int) -> str:
        raise AssertionError("filesystem storage has no S3 presigned URLs")

    async def stage(self, spooled: Path, key: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(spooled, target)

    async def staged(self, key: str) -> StagedUpload | None:
        path = self.root / key
        return (
            StagedUpload(size=path.stat().st_size, content_type=None, etag=None) if path.is_file() else None
        )

    async def fetch_staged(self, key: str, max_bytes: int) -> tuple[Path, str, int]:
        data = (self.root / key).read_bytes()
        if len(data) > max_bytes:
            raise ArchiveTooLargeError(max_bytes)
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        copy = self.incoming_dir / f"{Path(key).name}.part"
        copy.write_bytes(data)
        return copy, hashlib.sha256(data).hexdigest(), len(data)

    async def delete_staged(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def staged_names(self) -> list[str]:
        return sorted(p.name for p in (self.root / ".uploads").glob("*"))


class FakeAuditLog:
    """In-memory `services/audit/ports.AuditLog`; `fail_append` / `fail_settle` make the store unavailable."""

    def __init__(self) -> None:
        self.entries: dict[str, AuditEntry] = {}
        self.fail_append = False
        self.fail_settle = False

    async def append(self, entry: AuditEntry) -> None:
        if self.fail_append:
            raise ConnectionError("audit store unavailable")
        self.entries[entry.entry_id] = msgspec.structs.replace(entry)

    async def settle(
        self,
        entry_id: str,
        outcome: AuditOutcome,
        *,
        at: datetime,
        code: str | None,
        model_id: str | None,
        target: dict[str, Any],
        details: dict[str, Any],
    ) -> None:
        if self.fail_settle:
            raise ConnectionError("audit store unavailable")
        self.entries[entry_id] = msgspec.structs.replace(
            self.entries[entry_id],
            outcome=outcome,
            settled_at=at,
            code=code,
            model_id=model_id,
            target=dict(target),
            details=dict(details),
        )

    async def sent_deployment_requests(
        self, namespace_id: str, model_id: str, limit: int
    ) -> list[AuditEntry]:
        sent = [
            e
            for e in self.entries.values()
            if namespace_id in e.namespaces
            and e.model_id == model_id
            and e.action in (AuditAction.MODEL_DEPLOY, AuditAction.MODEL_UNDEPLOY)
            and e.outcome is AuditOutcome.DONE
            and e.details.get("sent") is True
        ]
        return sorted(sent, key=lambda e: (e.at, e.entry_id), reverse=True)[:limit]

    async def page(self, query: AuditQuery, offset: int, limit: int) -> tuple[int, list[AuditEntry]]:
        matching = [
            e
            for e in self.entries.values()
            if (query.namespace_id is None or query.namespace_id in e.namespaces)
            and (query.model_id is None or e.model_id == query.model_id)
            and (query.action is None or e.action == query.action)
        ]
        matching.sort(key=lambda e: (e.at, e.entry_id), reverse=True)
        return len(matching), matching[offset : offset + limit]
