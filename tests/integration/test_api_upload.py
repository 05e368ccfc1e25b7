"""Uploading models through the API: streaming, hashing, validation, limits, and one winner per version."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec
import pytest

from modelreg.shared.adapters.mongo import DuplicateModelError, ModelStore
from modelreg.shared.documents import ModelDetails
from tests.api_support import (
    SharedApi,
    api_client,
    bearer,
    make_archive,
    make_archive_with,
    shared_api,
    upload,
)
from tests.archive_bombs import bad_crc, declared_huge, many_members, trailing_garbage, zeros
from tests.conftest import insert_api_key
from tests.integration.test_api_models import seed_validator

GIB = 1024**3


def stored_files(settings) -> list[Path]:
    """Every file under the archive root, spool directory included."""
    root = Path(settings.archive_root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_error(response, status: int, error_type: str, code: str | None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    seed_validator("ErrorResponse").validate(body)
    assert body["success"] is False and body["status"] == status
    assert body["error"]["type"] == error_type and body["error"]["code"] == code
    return body


def assert_validation_error(response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    seed_validator("HTTPValidationError").validate(body)
    assert body["detail"][0]["loc"] == ["body", field], body
    assert body["detail"][0]["msg"]


@pytest.fixture
async def client(topics, db, make_key):
    """A client of the test's own app, database and archive root, for uploads that store something."""
    async with api_client(topics, await make_key("ns_a", "ns_b")) as client:
        yield client


CAPS = {"max_archive_members": 100, "max_unpacked_bytes": 1024 * 1024}


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app, database and archive root for the uploads that are refused (most of this module)."""
    async with shared_api(infra, tmp_path_factory.mktemp("upload"), "ns_a", "ns_b") as api:
        yield api


@pytest.fixture(scope="module")
async def shared_capped(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """The same with tight archive caps, for the archive bombs."""
    async with shared_api(infra, tmp_path_factory.mktemp("upload-capped"), "ns_a", **CAPS) as api:
        yield api


@pytest.fixture(scope="module")
async def admin_key(shared: SharedApi) -> str:
    return await insert_api_key(shared.db, shared.settings, admin=True)


async def refusing(api: SharedApi) -> AsyncIterator[SharedApi]:
    """A shared app for one test whose upload is refused. Only such tests use it, so it holds no model and
    no file when the test starts; one that stored something fails its own checks, and what it stored is
    removed afterwards so that it cannot fail another test too."""
    await api.client()
    yield api
    await api.db.custom_models.delete_many({})
    for path in stored_files(api.settings):
        path.unlink()


@pytest.fixture
async def refused(shared: SharedApi) -> AsyncIterator[SharedApi]:
    async for api in refusing(shared):
        yield api


@pytest.fixture
async def refused_capped(shared_capped: SharedApi) -> AsyncIterator[SharedApi]:
    async for api in refusing(shared_capped):
        yield api


async def test_upload_stores_the_archive_hashes_it_and_registers_the_model(client, db, settings) -> None:
    archive = make_archive({"model.onnx": os.urandom(200_000), "config.json": b'{"labels": 3}'})

    response = await upload(
        client,
        "ns_a",
        archive,
        name="resnet",
        version="2.1",
        model_format="onnx",
        framework="onnxruntime",
        task_type="classification",
        num_cpus="0.5",
        num_gpus="1",
        memory_gb="2",
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "model_id", "deployment_status", "endpoint", "model_archive_url"}
    assert body["success"] is True and body["deployment_status"] == "not_deployed"
    assert re.fullmatch(r"model_[0-9a-f]{24}", body["model_id"])
    # Where Ray Serve will serve it once deployed (the bridge publishes the same URL).
    assert body["endpoint"] == f"http://{settings.serve_host}:{settings.serve_port}/ns_a/{body['model_id']}"
    assert response.headers["location"] == f"/v1/namespaces/ns_a/models/{body['model_id']}"
    stored = Path(unquote(urlparse(body["model_archive_url"]).path))
    assert stored.read_bytes() == archive
    assert stored_files(settings) == [stored]  # nothing left in the spool directory

    details = await client.get(response.headers["location"])
    assert details.status_code == 200
    seed_validator("ModelDetailResponse").validate(details.json())
    model = details.json()["model"]
    assert model["model_hash"] == hashlib.sha256(archive).hexdigest()
    assert model["model_archive_url"] == body["model_archive_url"]
    assert (model["name"], model["version"], model["model_format"]) == ("resnet", "2.1", "onnx")
    assert (model["framework"], model["task_type"]) == ("onnxruntime", "classification")
    assert model["resource_requirements"] == {"num_cpus": 0.5, "num_gpus": 1, "memory": 2 * GIB}
    assert model["deployed"] is False and model["deployment_status"] == "not_deployed"


async def test_optional_fields_take_the_documented_defaults(client) -> None:
    response = await upload(client, "ns_a", framework="", task_type="")

    assert response.status_code == 201, response.text
    model = (await client.get(response.headers["location"])).json()["model"]
    assert model["resource_requirements"] == {"num_cpus": 1.0, "num_gpus": 0, "memory": 4 * GIB}
    assert model["framework"] is None and model["task_type"] is None


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"version": "x" * 129}, "version"),
        ({"model_format": "tensorflow"}, "model_format"),
        ({"num_cpus": "0.05"}, "num_cpus"),
        ({"num_cpus": "65"}, "num_cpus"),
        ({"num_cpus": "many"}, "num_cpus"),
        ({"num_gpus": "9"}, "num_gpus"),
        ({"num_gpus": "1.5"}, "num_gpus"),
        ({"memory_gb": "0"}, "memory_gb"),
        ({"memory_gb": "1e-300"}, "memory_gb"),
        ({"memory_gb": "0.1"}, "memory_gb"),
        ({"framework": "torch\x1b[31m"}, "framework"),
        ({"task_type": "classify\r\nX-Injected: 1"}, "task_type"),
        ({"name": "a\u202eb"}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_invalid_fields_are_a_seed_shaped_422_and_store_nothing(refused, form, field) -> None:
    response = await upload(refused.app_client, "ns_a", **form)

    assert_validation_error(response, field)
    assert await refused.db.custom_models.count_documents({}) == 0
    assert stored_files(refused.settings) == []


async def test_missing_required_field_names_it(refused) -> None:
    response = await refused.app_client.post(
        "/v1/namespaces/ns_a/models",
        data={"name": "m", "model_format": "onnx"},
        files={"file": ("m.tar.gz", make_archive(), "application/gzip")},
    )
    assert_validation_error(response, "version")


async def test_missing_archive_or_archive_sent_as_text_is_422(refused) -> None:
    client = refused.app_client
    without_file = await client.post(
        "/v1/namespaces/ns_a/models",
        data={"name": "m", "version": "1", "model_format": "onnx"},
        files={"other": ("x.txt", b"x", "text/plain")},  # forces multipart encoding
    )
    assert_validation_error(without_file, "other")

    as_text = await client.post(
        "/v1/namespaces/ns_a/models",
        data={"name": "m", "version": "1", "model_format": "onnx", "file": "model.tar.gz"},
        files={"unused": ("", b"", "application/octet-stream")},
    )
    assert_validation_error(as_text, "file")
    assert await refused.db.custom_models.count_documents({}) == 0
    assert stored_files(refused.settings) == []


async def test_only_the_archive_field_is_missing(refused) -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="name"\r\n\r\nm\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="version"\r\n\r\n1\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="model_format"\r\n\r\nonnx\r\n'
        b"--XyZ--\r\n"
    )
    response = await refused.app_client.post(
        "/v1/namespaces/ns_a/models",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=XyZ"},
    )
    assert_validation_error(response, "file")


async def test_non_multipart_body_is_415(refused) -> None:
    response = await refused.app_client.post("/v1/namespaces/ns_a/models", json={"name": "m"})
    assert_error(response, 415, "UnsupportedMediaTypeError", "multipart_required")


async def test_malformed_multipart_is_400(refused) -> None:
    response = await refused.app_client.post(
        "/v1/namespaces/ns_a/models",
        content=b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=XyZ"},
    )
    assert_error(response, 400, "BadRequestError", "invalid_multipart")
    assert stored_files(refused.settings) == []


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    return info


@pytest.mark.parametrize(
    ("archive", "code"),
    [
        (b"definitely not gzip", "invalid_archive"),
        (gzip.compress(b"gzip but not a tar" * 100), "invalid_archive"),
        (make_archive({}), "invalid_archive"),
        (make_archive_with(_member("../escape.txt", size=1), b"x"), "unsafe_archive"),
        (make_archive_with(_member("/etc/cron.d/x", size=1), b"x"), "unsafe_archive"),
        (make_archive_with(_member("link", tarfile.SYMTYPE, linkname="/etc/passwd")), "unsafe_archive"),
        (make_archive_with(_member("hard", tarfile.LNKTYPE, linkname="other")), "unsafe_archive"),
        (make_archive_with(_member("dev", tarfile.CHRTYPE)), "unsafe_archive"),
    ],
    ids=["not-gzip", "not-tar", "empty", "dotdot", "absolute", "symlink", "hardlink", "device"],
)
async def test_unreadable_or_unsafe_archives_are_refused(refused, archive, code) -> None:
    response = await upload(refused.app_client, "ns_a", archive)

    body = assert_error(response, 400, "BadRequestError", code)
    assert body["error"]["details"] == {"filename": "model.tar.gz"}
    assert await refused.db.custom_models.count_documents({}) == 0
    assert stored_files(refused.settings) == []


UNPACKED_LIMITS = {"max_unpacked_bytes": 1024 * 1024, "max_compression_ratio": 100}


@pytest.mark.parametrize(
    ("archive", "code", "limit"),
    [
        (many_members(101), "archive_too_many_members", {"max_archive_members": 100}),
        (declared_huge(), "archive_too_large_unpacked", UNPACKED_LIMITS),
        (zeros(4 * 1024 * 1024), "archive_too_large_unpacked", UNPACKED_LIMITS),
        (bad_crc(), "invalid_archive", {}),
        (trailing_garbage(), "invalid_archive", {}),
    ],
    ids=["too-many-members", "declared-4-TiB", "4-MiB-of-zeros", "bad-crc", "trailing-garbage"],
)
async def test_archive_bombs_and_damaged_gzip_are_400_and_store_nothing(
    refused_capped, archive, code, limit
) -> None:
    response = await upload(refused_capped.app_client, "ns_a", archive)

    body = assert_error(response, 400, "BadRequestError", code)
    assert body["error"]["details"] == {"filename": "model.tar.gz", **limit}
    assert await refused_capped.db.custom_models.count_documents({}) == 0
    assert stored_files(refused_capped.settings) == []


async def test_archive_over_the_limit_is_413_while_streaming(topics, db, make_key) -> None:
    small = msgspec.structs.replace(topics, max_archive_bytes=50_000)
    async with api_client(small, await make_key("ns_a")) as client:
        response = await upload(client, "ns_a", os.urandom(80_000))

        body = assert_error(response, 413, "PayloadTooLargeError", "archive_too_large")
        assert body["error"]["details"] == {"max_archive_bytes": 50_000}
        assert await db.custom_models.count_documents({}) == 0
        assert stored_files(small) == []

        # A body far larger than any allowed upload is refused from its Content-Length alone.
        huge = await upload(client, "ns_a", os.urandom(3 * 1024 * 1024))
        assert_error(huge, 413, "PayloadTooLargeError", "archive_too_large")

        fits = await upload(client, "ns_a", make_archive())
        assert fits.status_code == 201


async def test_oversized_text_field_is_413(refused) -> None:
    response = await upload(refused.app_client, "ns_a", framework="f" * (70 * 1024))
    assert_error(response, 413, "PayloadTooLargeError", "form_field_too_large")


@pytest.mark.parametrize("namespace", ["%2E%2E", "%2E", "a%20b"])
async def test_namespace_ids_that_cannot_be_stored_safely_are_422(refused, admin_key, namespace) -> None:
    response = await refused.app_client.post(
        f"/v1/namespaces/{namespace}/models",
        data={"name": "m", "version": "1", "model_format": "onnx"},
        files={"file": ("m.tar.gz", make_archive(), "application/gzip")},
        headers=bearer(admin_key),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", "namespace_id"]
    assert stored_files(refused.settings) == []


async def test_same_name_and_version_twice_is_409_with_a_code(client, db, settings) -> None:
    first = await upload(client, "ns_a", name="bert", version="1")
    assert first.status_code == 201

    second = await upload(client, "ns_a", name="bert", version="1")

    body = assert_error(second, 409, "ConflictError", "model_version_exists")
    assert body["error"]["details"] == {"name": "bert", "version": "1", "model_id": first.json()["model_id"]}
    assert len(stored_files(settings)) == 1
    # Another version, or the same version in another namespace, is a different model.
    assert (await upload(client, "ns_a", name="bert", version="2")).status_code == 201
    assert (await upload(client, "ns_b", name="bert", version="1")).status_code == 201


async def test_concurrent_uploads_of_one_version_have_exactly_one_winner(client, db, settings) -> None:
    archives = [make_archive({"model.onnx": os.urandom(50_000)}) for _ in range(8)]

    responses = await asyncio.gather(*(upload(client, "ns_a", a, name="race", version="1") for a in archives))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 201)
    for loser in (r for r in responses if r.status_code == 409):
        assert loser.json()["error"]["code"] == "model_version_exists"
    documents = await db.custom_models.find({"name": "race"}).to_list()
    assert [d["model_id"] for d in documents] == [winner["model_id"]]
    # The winner's archive is the one stored, and only it.
    assert [p.as_uri() for p in stored_files(settings)] == [winner["model_archive_url"]]
    stored_hash = documents[0]["model_hash"]
    assert stored_hash in {hashlib.sha256(a).hexdigest() for a in archives}


async def test_the_unique_index_decides_when_two_inserts_race(db) -> None:
    store = ModelStore()

    def details(model_id: str) -> ModelDetails:
        return ModelDetails(
            model_id=model_id,
            namespace_id="ns_a",
            name="same",
            version="1",
            model_archive_url=f"file:///archives/{model_id}.tar.gz",
            model_format="onnx",
            model_hash="0" * 64,
        )

    results = await asyncio.gather(
        *(store.insert_model(details(f"model_{i}")) for i in range(5)), return_exceptions=True
    )

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, DuplicateModelError) for r in results if r is not None)
    assert await db.custom_models.count_documents({"name": "same"}) == 1


@pytest.fixture
def s3_settings(topics, s3_url):
    """Settings storing archives in a bucket of a local S3-compatible server."""
    import boto3

    boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket="models")
    return msgspec.structs.replace(topics, s3_endpoint_url=s3_url, s3_bucket="models")


async def test_archives_go_to_s3_when_a_bucket_is_configured(s3_settings, db, make_key) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_settings.s3_endpoint_url)
    archive = make_archive({"weights.safetensors": os.urandom(10_000)})
    async with api_client(s3_settings, await make_key("ns_a")) as client:
        response = await upload(client, "ns_a", archive, model_format="safetensors")

        assert response.status_code == 201, response.text
        body = response.json()
        assert body["model_archive_url"] == f"s3://models/ns_a/{body['model_id']}.tar.gz"
        stored = s3.get_object(Bucket="models", Key=f"ns_a/{body['model_id']}.tar.gz")["Body"].read()
        assert stored == archive
        assert stored_files(s3_settings) == []  # nothing kept locally, not even the spool file

        assert (await client.delete(f"/v1/namespaces/ns_a/models/{body['model_id']}")).json()[
            "deleted"
        ] is True
        assert s3.list_objects_v2(Bucket="models").get("KeyCount") == 0
