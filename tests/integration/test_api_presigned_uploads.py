"""Presigned uploads through the real app: create → PUT → confirm → details, on the filesystem and S3 (moto).

The answers are also read with the official Mixpeek SDK's own response models.
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import msgspec
import pytest

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.upload_signing import upload_signature
from tests.api_support import api_client, make_archive
from tests.conftest import eventually, insert_api_key, make_settings
from tests.factories import seed_model_document
from tests.integration.test_api_upload import assert_error, assert_validation_error, stored_files
from tests.mixpeek_sdk import mixpeek

SIGNING_KEY = "test-upload-signing-key"
GZIP = {"Content-Type": "application/gzip"}


def announce(**extra: Any) -> dict[str, Any]:
    return {"name": "resnet", "version": "1.0.0", "model_format": "onnx", **extra}


def local_path(url: str) -> str:
    """The path and query of a signed upload URL, for the ASGI test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def staged_files(settings) -> list[Path]:
    return [p for p in stored_files(settings) if ".uploads" in p.parts]


@pytest.fixture
def fs_settings(settings):
    return msgspec.structs.replace(settings, upload_signing_key=SIGNING_KEY)


@pytest.fixture
async def admin(fs_settings, db, make_key) -> AsyncIterator[Any]:
    async with api_client(fs_settings, await make_key(admin=True)) as client:
        yield client


async def create(client, namespace: str = "ns_a", **extra: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/namespaces/{namespace}/models/uploads", json=announce(**extra))
    assert response.status_code == 200, response.text
    return response.json()


async def confirm(client, upload_id: str, namespace: str = "ns_a", **body: Any):
    return await client.post(f"/v1/namespaces/{namespace}/models/uploads/{upload_id}/confirm", json=body)


def check_with_sdk_models(created: dict[str, Any], confirmed: dict[str, Any]) -> None:
    # The namespace route has no organization; everything else is the SDK's ModelPresignedURLResponse.
    parsed = mixpeek.ModelPresignedURLResponse.from_dict({**created, "organization_id": "-"})
    assert parsed.upload_id == created["upload_id"] and parsed.required_content_type == "application/gzip"
    assert parsed.expires_at == datetime.fromisoformat(created["expires_at"])
    result = mixpeek.ConfirmModelUploadResponse.from_dict(confirmed)
    assert result.success is True and result.validation_status == "passed" and result.model_id
    assert result.upload_id == created["upload_id"] and result.validation_errors == []


# --- filesystem storage: the registry's own signed URL ------------------------------------------------------


async def test_filesystem_flow_create_put_confirm_details(admin, fs_settings, db) -> None:
    archive = make_archive()
    created = await create(
        admin,
        file_size_bytes=len(archive),
        task_type="classification",
        resource_requirements={"num_cpus": 0.5, "num_gpus": 0, "memory": 2 * 1024**3},
    )
    assert created["presigned_url"].startswith("http://testserver.local/v1/uploads/upload_")
    assert created["s3_key"] == f".uploads/{created['upload_id']}.tar.gz"
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= timedelta(hours=1)

    put = await admin.put(
        local_path(created["presigned_url"]), content=archive, headers={**GZIP, "Authorization": ""}
    )
    assert put.status_code == 200, put.text
    assert put.json()["size_bytes"] == len(archive) and len(staged_files(fs_settings)) == 1

    confirmed = await confirm(admin, created["upload_id"], file_size_bytes=len(archive))
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    check_with_sdk_models(created, body)
    assert body["s3_archive_url"].endswith(f"/ns_a/{body['model_id']}.tar.gz")
    assert staged_files(fs_settings) == []

    details = (await admin.get(f"/v1/namespaces/ns_a/models/{body['model_id']}")).json()["model"]
    assert details["name"] == "resnet" and details["task_type"] == "classification"
    assert details["resource_requirements"] == {"num_cpus": 0.5, "num_gpus": 0, "memory": 2 * 1024**3}
    assert len(details["model_hash"]) == 64 and details["model_archive_url"] == body["s3_archive_url"]

    # Used once: the URL and the confirmation.
    again = await admin.put(local_path(created["presigned_url"]), content=archive, headers=GZIP)
    assert_error(again, 409, "ConflictError", "upload_already_used")
    reused = assert_error(
        await confirm(admin, created["upload_id"]), 409, "ConflictError", "upload_already_used"
    )
    assert reused["error"]["details"]["model_id"] == body["model_id"]


async def test_signed_url_refuses_tampering_expiry_and_wrong_content(admin, fs_settings) -> None:
    created = await create(admin)
    upload_id = created["upload_id"]
    query = parse_qs(urlsplit(created["presigned_url"]).query)
    expires, signature = query["expires"][0], query["signature"][0]
    archive = make_archive()

    for path in (
        f"/v1/uploads/{upload_id}?expires={expires}&signature={'0' * 64}",
        f"/v1/uploads/{upload_id}?expires={int(expires) + 3600}&signature={signature}",
        f"/v1/uploads/{upload_id}",
    ):
        assert_error(
            await admin.put(path, content=archive, headers=GZIP),
            403,
            "ForbiddenError",
            "invalid_upload_signature",
        )
    past = int(time.time()) - 1
    past_signature = upload_signature(SIGNING_KEY.encode(), upload_id, past)
    expired = f"/v1/uploads/{upload_id}?expires={past}&signature={past_signature}"
    assert_error(await admin.put(expired, content=archive, headers=GZIP), 410, "GoneError", "upload_expired")

    signed = local_path(created["presigned_url"])
    wrong = await admin.put(signed, content=archive, headers={"Content-Type": "application/octet-stream"})
    assert_error(wrong, 415, "UnsupportedMediaTypeError", "wrong_content_type")
    assert staged_files(fs_settings) == []
    # None of these used the URL up.
    assert (await admin.put(signed, content=archive, headers=GZIP)).status_code == 200


async def test_too_large_upload_is_refused_and_the_url_stays_usable(fs_settings, db, make_key) -> None:
    small = msgspec.structs.replace(fs_settings, max_archive_bytes=200_000)
    async with api_client(small, await make_key(admin=True)) as client:
        refused = await client.post(
            "/v1/namespaces/ns_a/models/uploads", json=announce(file_size_bytes=200_001)
        )
        assert_error(refused, 413, "PayloadTooLargeError", "archive_too_large")

        created = await create(client)
        big = make_archive({"weights.bin": os.urandom(300_000)})
        put = await client.put(local_path(created["presigned_url"]), content=big, headers=GZIP)
        assert_error(put, 413, "PayloadTooLargeError", "archive_too_large")
        assert [p for p in stored_files(small) if p.suffix != ".lock"] == []
        assert (
            await client.put(local_path(created["presigned_url"]), content=make_archive(), headers=GZIP)
        ).status_code == 200


def bomb() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(20):
            info = tarfile.TarInfo(f"f{index}")
            archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


async def test_archive_refused_at_confirm_fails_the_upload(fs_settings, db, make_key) -> None:
    capped = msgspec.structs.replace(fs_settings, max_archive_members=10)
    async with api_client(capped, await make_key(admin=True)) as client:
        created = await create(client)
        assert_error(await confirm(client, created["upload_id"]), 409, "ConflictError", "upload_not_received")
        assert (
            await client.put(local_path(created["presigned_url"]), content=bomb(), headers=GZIP)
        ).status_code == 200

        refused = await confirm(client, created["upload_id"])
        body = assert_error(refused, 400, "BadRequestError", "archive_too_many_members")
        assert body["error"]["details"]["max_archive_members"] == 10
        assert stored_files(capped) == [] or all(".incoming" in p.parts for p in stored_files(capped))
        assert await db.custom_models.count_documents({}) == 0
        assert_error(await confirm(client, created["upload_id"]), 409, "ConflictError", "upload_already_used")


async def test_confirm_checks_name_version_size_and_namespace(admin, db) -> None:
    first = await create(admin)
    second = await create(admin)
    for created in (first, second):
        assert (
            await admin.put(local_path(created["presigned_url"]), content=make_archive(), headers=GZIP)
        ).status_code == 200
    assert (await confirm(admin, first["upload_id"])).status_code == 200
    # Announced again: refused upfront; confirmed second: refused at confirm.
    early = await admin.post("/v1/namespaces/ns_a/models/uploads", json=announce())
    assert_error(early, 409, "ConflictError", "model_version_exists")
    assert_error(await confirm(admin, second["upload_id"]), 409, "ConflictError", "model_version_exists")

    other = await create(admin, version="2.0.0", file_size_bytes=10)
    assert (
        await admin.put(local_path(other["presigned_url"]), content=make_archive(), headers=GZIP)
    ).status_code == 200
    assert_error(
        await confirm(admin, other["upload_id"], namespace="ns_b"), 404, "NotFoundError", "upload_not_found"
    )
    assert_error(await confirm(admin, other["upload_id"]), 400, "BadRequestError", "upload_size_mismatch")
    assert_error(await confirm(admin, "upload_" + "0" * 24), 404, "NotFoundError", "upload_not_found")
    assert await db.custom_models.count_documents({}) == 1


async def test_expired_upload_is_refused_and_cleaned_up(fs_settings, db, make_key) -> None:
    # The API's periodic cleanup, run often here.
    quick = msgspec.structs.replace(fs_settings, upload_cleanup_interval_s=0.2)
    async with api_client(quick, await make_key(admin=True)) as client:
        created = await create(client)
        kept = await create(client, version="2")
        for upload in (created, kept):
            put = await client.put(local_path(upload["presigned_url"]), content=make_archive(), headers=GZIP)
            assert put.status_code == 200
        assert len(staged_files(quick)) == 2
        await expire(db, created["upload_id"])

        assert_error(await confirm(client, created["upload_id"]), 410, "GoneError", "upload_expired")
        await eventually(lambda: upload_state(db, created["upload_id"], "expired"))
        assert [p.name for p in staged_files(quick)] == [f"{kept['upload_id']}.tar.gz"]
        assert_error(await confirm(client, created["upload_id"]), 410, "GoneError", "upload_expired")
        assert (await confirm(client, kept["upload_id"])).status_code == 200


async def expire(db, upload_id: str) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.model_uploads.update_one({"upload_id": upload_id}, {"$set": {"expires_at": past}})


async def upload_state(db, upload_id: str, state: str) -> bool:
    record = await db.model_uploads.find_one({"upload_id": upload_id})
    return record is not None and record["state"] == state


async def test_uploads_routes_are_not_shadowed_by_model_ids(admin, db) -> None:
    # "uploads" is a static segment: it takes the path from {model_id} (GET answers 405), so the id is
    # reserved: `modelreg models register` refuses it (tests/unit/test_identifiers.py).
    created = await create(admin)
    assert created["upload_id"].startswith("upload_")
    assert_error(await admin.get("/v1/namespaces/ns_a/models/uploads"), 405, "MethodNotAllowedError", None)
    await db.custom_models.insert_one(seed_model_document("ns_a", "upload_x"))
    assert (await admin.get("/v1/namespaces/ns_a/models/upload_x")).status_code == 200
    refused = await admin.post("/v1/namespaces/ns_a/models/uploads", json={"name": "x"})
    assert_validation_error(refused, "version")


async def test_upload_routes_need_the_namespace_but_the_signed_url_needs_no_key(
    fs_settings, db, make_key
) -> None:
    async with api_client(fs_settings, await make_key("ns_a")) as client:
        created = await create(client)
        refused = await client.post("/v1/namespaces/ns_b/models/uploads", json=announce())
        assert_error(refused, 403, "ForbiddenError", "namespace_forbidden")
        client.headers.pop("Authorization")
        anonymous = await client.post("/v1/namespaces/ns_a/models/uploads", json=announce())
        assert_error(anonymous, 401, "UnauthorizedError", "missing_api_key")
        put = await client.put(local_path(created["presigned_url"]), content=make_archive(), headers=GZIP)
        assert put.status_code == 200, put.text


# --- S3 storage (moto): a real presigned PUT ----------------------------------------------------------------


@pytest.fixture
async def s3_admin(settings, s3_url, db, make_key) -> AsyncIterator[Any]:
    boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket="models")
    s3_settings = msgspec.structs.replace(
        settings, s3_bucket="models", s3_endpoint_url=s3_url, upload_cleanup_interval_s=0.2
    )
    async with api_client(s3_settings, await make_key(admin=True)) as client:
        yield client


def s3_keys(s3_url: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=s3_url).list_objects_v2(Bucket="models")
    return sorted(item["Key"] for item in listing.get("Contents", []))


async def test_s3_flow_create_put_confirm_details(s3_admin, s3_url, db) -> None:
    archive = make_archive()
    created = await create(s3_admin)
    assert created["presigned_url"].startswith(f"{s3_url}/models/.uploads/{created['upload_id']}.tar.gz?")
    assert_error(await confirm(s3_admin, created["upload_id"]), 409, "ConflictError", "upload_not_received")

    put = await asyncio.to_thread(
        httpx.put,
        created["presigned_url"],
        content=archive,
        headers={"Content-Type": created["required_content_type"]},
    )
    assert put.status_code == 200, put.text
    assert s3_keys(s3_url) == [created["s3_key"]]

    confirmed = await confirm(
        s3_admin, created["upload_id"], etag=put.headers["etag"], file_size_bytes=len(archive)
    )
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    check_with_sdk_models(created, body)
    assert body["s3_archive_url"] == f"s3://models/ns_a/{body['model_id']}.tar.gz"
    assert s3_keys(s3_url) == [f"ns_a/{body['model_id']}.tar.gz"]
    details = (await s3_admin.get(f"/v1/namespaces/ns_a/models/{body['model_id']}")).json()["model"]
    assert details["model_archive_url"] == body["s3_archive_url"] and details["version"] == "1.0.0"
    assert_error(await confirm(s3_admin, created["upload_id"]), 409, "ConflictError", "upload_already_used")


async def test_s3_wrong_content_type_and_abandoned_upload(s3_admin, s3_url, db) -> None:
    wrong = await create(s3_admin, version="1")
    put = await asyncio.to_thread(
        httpx.put, wrong["presigned_url"], content=make_archive(), headers={"Content-Type": "text/plain"}
    )
    if put.status_code == 200:  # moto does not check signatures; the confirm checks the stored type
        refused = await confirm(s3_admin, wrong["upload_id"])
        assert_error(refused, 400, "BadRequestError", "upload_content_type_mismatch")
    else:
        assert put.status_code == 403
    assert s3_keys(s3_url) == []

    abandoned = await create(s3_admin, version="2")
    await asyncio.to_thread(httpx.put, abandoned["presigned_url"], content=make_archive(), headers=GZIP)
    assert s3_keys(s3_url) == [abandoned["s3_key"]]
    await expire(db, abandoned["upload_id"])
    await eventually(lambda: upload_state(db, abandoned["upload_id"], "expired"))
    assert s3_keys(s3_url) == []
    assert_error(await confirm(s3_admin, abandoned["upload_id"]), 410, "GoneError", "upload_expired")


async def test_s3_flow_for_a_shared_model(s3_admin, s3_url, db) -> None:
    archive = make_archive()
    response = await s3_admin.post("/v1/models/uploads", json=announce(description="shared"))
    assert response.status_code == 200, response.text
    created = response.json()
    # Exactly the SDK's ModelPresignedURLResponse: the organization, no namespace.
    assert set(created) == set(mixpeek.ModelPresignedURLResponse.model_fields)
    parsed = mixpeek.ModelPresignedURLResponse.from_dict(created)
    assert parsed.organization_id == "default" and parsed.s3_key == f".uploads/{created['upload_id']}.tar.gz"
    assert created["presigned_url"].startswith(f"{s3_url}/models/.uploads/{created['upload_id']}.tar.gz?")

    put = await asyncio.to_thread(
        httpx.put, created["presigned_url"], content=archive, headers={"Content-Type": "application/gzip"}
    )
    assert put.status_code == 200, put.text
    confirm_path = f"/v1/models/uploads/{created['upload_id']}/confirm"
    confirmed = await s3_admin.post(confirm_path, json={"etag": put.headers["etag"]})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert set(body) == set(mixpeek.ConfirmModelUploadResponse.model_fields)
    result = mixpeek.ConfirmModelUploadResponse.from_dict(body)
    assert result.validation_status == "passed" and result.model_id is not None
    assert result.s3_archive_url == f"s3://models/.org/{result.model_id}.tar.gz"
    assert s3_keys(s3_url) == [f".org/{result.model_id}.tar.gz"]
    shared = (await s3_admin.get(f"/v1/models/{result.model_id}")).json()["model"]
    assert shared["s3_archive_url"] == result.s3_archive_url and shared["description"] == "shared"
    assert await db.custom_models.count_documents({}) == 0
    assert_error(await s3_admin.post(confirm_path), 409, "ConflictError", "upload_already_used")
    downloaded = await s3_admin.get(f"/v1/models/{result.model_id}/download")
    assert downloaded.content == archive


# --- a real server: the signed URL it hands out works, and never reaches its log ----------------------------


@pytest.fixture
async def api_server(infra, tmp_path) -> AsyncIterator[tuple[ServiceProcess, int, str]]:
    settings = make_settings(
        infra, archive_root=str(tmp_path / "archives"), api_port=free_port(), upload_signing_key=SIGNING_KEY
    )
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    client = await mongo.connect(settings)
    key = await insert_api_key(client[settings.mongodb_database], settings, admin=True)
    process = ServiceProcess("api", settings, tmp_path / "api.log").start()
    await process.wait_listening(settings.api_port)
    yield process, settings.api_port, key
    process.stop()
    await client.drop_database(settings.mongodb_database)
    await client.close()


async def test_signed_url_of_a_real_server_works_and_is_not_logged(api_server) -> None:
    process, port, key = api_server
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = (
            await http.post("/v1/namespaces/ns_a/models/uploads", json=announce(), headers=auth)
        ).json()
        assert created["presigned_url"].startswith(f"{base}/v1/uploads/")
        put = await http.put(created["presigned_url"], content=make_archive(), headers=GZIP)
        assert put.status_code == 200, put.text
        confirmed = await http.post(
            f"/v1/namespaces/ns_a/models/uploads/{created['upload_id']}/confirm", headers=auth
        )
        assert confirmed.status_code == 200, confirmed.text
        model_id = confirmed.json()["model_id"]
        assert (await http.get(f"/v1/namespaces/ns_a/models/{model_id}", headers=auth)).status_code == 200
    signature = parse_qs(urlsplit(created["presigned_url"]).query)["signature"][0]
    assert signature not in process.log_path.read_text()
    routes = {line.get("route") for line in process.log_lines() if line.get("event") == "request"}
    assert "/v1/uploads/{upload_id}" in routes
