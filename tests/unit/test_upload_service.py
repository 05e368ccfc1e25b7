"""Presigned uploads on fakes: the signature rule, single use, concurrent confirms, cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from modelreg.services.api.domain_errors import (
    InvalidUploadSignature,
    UploadAlreadyUsed,
    UploadExpired,
    UploadNotFound,
    UploadNotReady,
    VersionExists,
)
from modelreg.services.api.models.registration import ModelRegistration
from modelreg.services.api.org_models.catalog import OrgModelCatalog
from modelreg.services.api.uploads.registrars import UploadRegistrar
from modelreg.services.api.uploads.schemas import (
    CreateModelUploadRequest,
    ModelPresignedURLResponse,
    OrgModelPresignedURLResponse,
)
from modelreg.services.api.uploads.service import UploadService
from modelreg.shared.settings import Settings
from modelreg.shared.upload_signing import SignatureCheck, check_upload_signature, upload_signature
from tests.api_fakes import FakeModelStore, FakeOrgModelStore, FakeUploadStorage, FakeUploadStore
from tests.api_support import make_archive

KEY = b"secret"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_signature_is_checked_before_the_expiry() -> None:
    good = upload_signature(KEY, "upload_1", 1000)
    assert check_upload_signature(KEY, "upload_1", "1000", good, 999) is SignatureCheck.VALID
    assert check_upload_signature(KEY, "upload_1", "1000", good, 1000) is SignatureCheck.EXPIRED
    assert check_upload_signature(KEY, "upload_1", "1000", good.upper(), 999) is SignatureCheck.VALID
    for upload_id, expires, signature in [
        ("upload_2", "1000", good),
        ("upload_1", "1001", good),
        ("upload_1", "1000", None),
        ("upload_1", "-1", good),
        ("upload_1", None, good),
    ]:
        assert check_upload_signature(KEY, upload_id, expires, signature, 0) is SignatureCheck.INVALID
    assert check_upload_signature(b"other", "upload_1", "1000", good, 999) is SignatureCheck.INVALID


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.store = FakeUploadStore()
        self.models = FakeModelStore()
        self.shared = FakeOrgModelStore(self.models)
        self.storage = FakeUploadStorage(tmp_path / "archives")
        settings = Settings(archive_root=str(tmp_path / "archives"), organization_id="acme")
        registrar = UploadRegistrar(
            ModelRegistration(self.models, self.storage, settings, self.clock),
            OrgModelCatalog(self.shared, self.storage, settings, self.clock),
        )
        self.service = UploadService(self.store, self.storage, registrar, settings, KEY, self.clock)

    async def create(self, version: str = "1", *, shared: bool = False) -> tuple[str, str, str]:
        request = CreateModelUploadRequest(name="m", version=version, model_format="onnx")
        if shared:
            created: (
                ModelPresignedURLResponse | OrgModelPresignedURLResponse
            ) = await self.service.create_shared(request, "http://api.test/")
        else:
            created = await self.service.create("ns", request, "http://api.test/")
        query = parse_qs(urlsplit(created.presigned_url).query)
        return created.upload_id, query["expires"][0], query["signature"][0]

    async def put(self, upload_id: str, expires: str, signature: str, body: bytes | None = None) -> None:
        await self.service.receive(
            upload_id, expires, signature, "application/gzip", None, one_chunk(body or make_archive())
        )


async def one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_the_url_takes_one_archive_and_the_upload_makes_one_model(world: World) -> None:
    upload_id, expires, signature = await world.create()
    with pytest.raises(InvalidUploadSignature):
        await world.put(upload_id, expires, "0" * 64)
    await world.put(upload_id, expires, signature)
    with pytest.raises(UploadAlreadyUsed):
        await world.put(upload_id, expires, signature)

    results = await asyncio.gather(
        *(world.service.confirm("ns", upload_id, None) for _ in range(3)), return_exceptions=True
    )

    confirmed = [r for r in results if not isinstance(r, BaseException)]
    assert len(confirmed) == 1 and len(world.models.models) == 1
    assert all(isinstance(r, (UploadNotReady, UploadAlreadyUsed)) for r in results if r not in confirmed)
    assert world.storage.staged_names() == []


async def test_a_failed_put_leaves_the_url_usable(world: World) -> None:
    upload_id, expires, signature = await world.create()

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await world.service.receive(upload_id, expires, signature, "application/gzip", None, broken())
    assert world.storage.staged_names() == []
    await world.put(upload_id, expires, signature)
    assert (await world.service.confirm("ns", upload_id, None)).model_id


async def test_cleanup_removes_expired_uploads_bytes_only(world: World) -> None:
    stale, expires, signature = await world.create("1")
    await world.put(stale, expires, signature)
    done, expires, signature = await world.create("2")
    await world.put(done, expires, signature)
    await world.service.confirm("ns", done, None)
    world.clock.now = T0 + timedelta(minutes=30)
    fresh, expires, signature = await world.create("3")
    await world.put(fresh, expires, signature)

    world.clock.now = T0 + timedelta(hours=1, seconds=1)
    assert await world.service.cleanup_expired() == 1

    assert world.storage.staged_names() == [f"{fresh}.tar.gz"]
    with pytest.raises(UploadExpired):
        await world.service.confirm("ns", stale, None)
    assert await world.service.cleanup_expired() == 0


async def test_a_shared_upload_becomes_a_shared_model_and_only_confirms_as_one(world: World) -> None:
    upload_id, expires, signature = await world.create(shared=True)
    await world.put(upload_id, expires, signature)
    with pytest.raises(UploadNotFound):
        await world.service.confirm("ns", upload_id, None)

    confirmed = await world.service.confirm_shared(upload_id, None)

    assert confirmed.model_id is not None and confirmed.model_id.startswith("model_")
    assert confirmed.s3_archive_url is not None and "/.org/" in confirmed.s3_archive_url
    (shared,) = await world.shared.list_all()
    assert (shared.model_id, shared.name, shared.version) == (confirmed.model_id, "m", "1")
    assert world.models.models == {} and world.storage.staged_names() == []
    with pytest.raises(UploadAlreadyUsed):
        await world.service.confirm_shared(upload_id, None)
    # Name and version are unique among shared models (refused upfront), not across namespaces.
    with pytest.raises(VersionExists):
        await world.create(shared=True)
    await world.create()


async def test_a_namespace_upload_does_not_confirm_as_a_shared_model(world: World) -> None:
    upload_id, expires, signature = await world.create()
    await world.put(upload_id, expires, signature)
    with pytest.raises(UploadNotFound):
        await world.service.confirm_shared(upload_id, None)
    assert (await world.service.confirm("ns", upload_id, None)).namespace_id == "ns"


async def test_the_shared_answer_names_the_organization(world: World) -> None:
    request = CreateModelUploadRequest(name="m", version="1", model_format="onnx", description="d")
    created = await world.service.create_shared(request, "http://api.test/")
    assert created.organization_id == "acme" and created.presigned_url.startswith(
        "http://api.test/v1/uploads/"
    )
