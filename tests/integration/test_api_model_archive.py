"""`GET …/models/{model_id}/archive` through the real app: the stored archive streamed back with its size and
sha256, under the read rules; and a Serve replica's fetch of it from a real API process with a read key."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import boto3
import msgspec
import pytest

from modelreg.services.serve_bridge.materialize import ArchiveProblem, prepare_model_files
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.settings import Settings
from tests.api_support import api_client, bearer
from tests.factories import seed_model_document
from tests.model_archives import linear_onnx_bytes, tar_gz, write_archive

ARCHIVE = "/v1/namespaces/{ns}/models/{model}/archive"


async def store(db, settings: Settings, namespace: str, model_id: str) -> tuple[bytes, str, Path]:
    data = tar_gz({"model.onnx": linear_onnx_bytes()})
    path, digest = write_archive(Path(settings.archive_root) / namespace, f"{model_id}.tar.gz", data)
    await db.custom_models.insert_one(
        seed_model_document(namespace, model_id, model_archive_url=path.as_uri(), model_hash=digest)
    )
    return data, digest, path


async def test_the_archive_is_streamed_with_its_length_and_sha256(settings, db, make_key) -> None:
    data, digest, _ = await store(db, settings, "ns_a", "m1")
    key = await make_key("ns_a")
    async with api_client(settings, key) as client:
        response = await client.get(ARCHIVE.format(ns="ns_a", model="m1"))

    assert response.status_code == 200
    assert response.content == data and hashlib.sha256(response.content).hexdigest() == digest
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["content-type"] == "application/gzip"


async def test_the_archive_follows_the_read_rules(settings, db, make_key) -> None:
    _, _, path = await store(db, settings, "ns_a", "m1")
    await store(db, settings, "ns_a", "gone")
    (Path(settings.archive_root) / "ns_a" / "gone.tar.gz").unlink()
    other = await make_key("ns_b")
    reader = await make_key("ns_a")
    async with api_client(settings) as client:
        anonymous = await client.get(ARCHIVE.format(ns="ns_a", model="m1"))
        foreign = await client.get(ARCHIVE.format(ns="ns_a", model="m1"), headers=bearer(other))
        unknown = await client.get(ARCHIVE.format(ns="ns_a", model="nope"), headers=bearer(reader))
        missing = await client.get(ARCHIVE.format(ns="ns_a", model="gone"), headers=bearer(reader))

    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    assert foreign.status_code == 404
    assert unknown.status_code == 404 and unknown.json()["error"]["details"]["resource"] == "model"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "archive_not_found"
    assert missing.json()["success"] is False and path.is_file()


async def test_an_archive_outside_the_storage_is_never_served(settings, db, make_key, tmp_path) -> None:
    elsewhere, digest = write_archive(tmp_path / "elsewhere", "x.tar.gz", tar_gz({"model.onnx": b"x"}))
    await db.custom_models.insert_one(
        seed_model_document("ns_a", "sneaky", model_archive_url=elsewhere.as_uri(), model_hash=digest)
    )
    async with api_client(settings, await make_key("ns_a")) as client:
        response = await client.get(ARCHIVE.format(ns="ns_a", model="sneaky"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "archive_not_found"


async def test_an_s3_archive_is_streamed_from_the_bucket(settings, db, make_key, s3_url: str) -> None:
    s3_settings = msgspec.structs.replace(settings, s3_endpoint_url=s3_url, s3_bucket="models")
    data = tar_gz({"model.onnx": linear_onnx_bytes()})
    digest = hashlib.sha256(data).hexdigest()
    s3 = boto3.client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="ns_a/m1.tar.gz", Body=data)
    await db.custom_models.insert_one(
        seed_model_document("ns_a", "m1", model_archive_url="s3://models/ns_a/m1.tar.gz", model_hash=digest)
    )
    async with api_client(s3_settings, await make_key("ns_a")) as client:
        response = await client.get(ARCHIVE.format(ns="ns_a", model="m1"))
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-length"] == str(len(data))


@pytest.mark.parametrize("with_key", [True, False], ids=["read-key", "no-key"])
async def test_a_replica_fetches_the_archive_from_a_running_registry(
    settings, db, make_key, tmp_path: Path, with_key: bool
) -> None:
    from modelreg.services.devstack import embedded

    _, digest, _ = await store(db, settings, "ns_a", "m1")
    port = embedded.free_port()
    api = ServiceProcess("api", msgspec.structs.replace(settings, api_port=port), tmp_path / "api.log")
    api.start()
    try:
        await api.wait_listening(port)
        registry = f"http://127.0.0.1:{port}"
        # A replica on another machine: no archive root, no bucket; only the registry and a read key.
        replica = ArchiveStorage(
            Settings(
                archive_root=str(tmp_path / "replica-root"),
                bridge_archive_registry_url=registry,
                bridge_archive_registry_key=await make_key("ns_a") if with_key else "",
            )
        )
        url = f"{registry}{ARCHIVE.format(ns='ns_a', model='m1')}"
        if with_key:
            files = await prepare_model_files(replica, url, digest, tmp_path / "replica-cache")
            assert (files / "model.onnx").read_bytes() == linear_onnx_bytes()
        else:
            with pytest.raises(ArchiveProblem, match="could not be fetched"):
                await prepare_model_files(replica, url, digest, tmp_path / "replica-cache")
        # Only that registry's archive route: any other URL stays refused.
        with pytest.raises(ArchiveProblem) as refused:
            await prepare_model_files(replica, "http://127.0.0.1:1/x.tar.gz", digest, tmp_path / "c2")
        assert refused.value.reason == "archive_not_allowed"
    finally:
        await asyncio.to_thread(api.stop)
