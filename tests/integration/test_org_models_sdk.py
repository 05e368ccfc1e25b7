"""Shared (org-level) models through the official Mixpeek SDK against a real API process and worker.

Register (a multipart upload, or the SDK's presigned flow: generate_upload_url_models, PUT,
confirm_upload_models), list and get through ModelsApi, list available, enable with deploy, see the ready
event make it deployed in one namespace only, disable (undeploy command), delete (refused while enabled),
download.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.contracts import COMMAND_DECODER, CommandType, EventType, encode
from tests.api_support import make_archive
from tests.conftest import insert_api_key, make_settings, read_topic
from tests.factories import event
from tests.mixpeek_sdk import mixpeek

ARCHIVE = make_archive()


class Stack:
    def __init__(self, settings: Any, port: int, admin: str, team_a: str, database: Any) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{port}"
        self.admin = admin
        self.team_a = team_a
        self.database = database

    def sdk(self, key: str) -> tuple[mixpeek.CustomModelsApi, mixpeek.ModelsApi]:
        client = mixpeek.ApiClient(mixpeek.Configuration(host=self.url, access_token=key))
        return mixpeek.CustomModelsApi(client), mixpeek.ModelsApi(client)

    def register(
        self, name: str = "shared-embedder", version: str = "1.0.0", **fields: str
    ) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/models",
            headers={"Authorization": f"Bearer {self.admin}"},
            data={"name": name, "version": version, "model_format": "onnx", **fields},
            files={"file": ("model.tar.gz", ARCHIVE, "application/gzip")},
            timeout=30,
        )


@pytest.fixture(scope="module")
async def stack(infra, tmp_path_factory) -> AsyncIterator[Stack]:
    settings = make_settings(
        infra, archive_root=str(tmp_path_factory.mktemp("archives")), api_port=free_port()
    )
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    client = await mongo.connect(settings)
    database = client[settings.mongodb_database]
    admin = await insert_api_key(database, settings, admin=True)
    team_a = await insert_api_key(database, settings, "team-a")
    logs = tmp_path_factory.mktemp("logs")
    api = ServiceProcess("api", settings, logs / "api.log").start()
    worker = ServiceProcess("worker", settings, logs / "worker.log").start()
    await api.wait_listening(settings.api_port)
    yield Stack(settings, settings.api_port, admin, team_a, database)
    api.stop()
    worker.stop()
    await client.drop_database(settings.mongodb_database)
    await client.close()


@pytest.fixture
async def fresh(stack: Stack) -> Stack:
    await stack.database.custom_models.delete_many({})
    await stack.database.org_models.delete_many({})
    await stack.database.model_uploads.delete_many({})
    return stack


async def commands_for(settings: Any, model_id: str, expected: int) -> list[Any]:
    records = await read_topic(settings, settings.commands_topic, expected=expected)
    decoded = [COMMAND_DECODER.decode(r.value) for r in records]
    return [c for c in decoded if c.model_id == model_id]


async def test_the_sdk_lists_gets_enables_deploys_and_disables_a_shared_model(fresh: Stack) -> None:
    registered = fresh.register(description="a shared embedder", task_type="embedding")
    assert registered.status_code == 201, registered.text
    model_id = registered.json()["model_id"]
    assert registered.headers["location"] == f"/v1/models/{model_id}"
    custom, models = fresh.sdk(fresh.admin)

    listed = models.list_models()
    assert isinstance(listed, mixpeek.OrgModelListResponse)
    assert listed.total == 1 and listed.organization_id == fresh.settings.organization_id
    (item,) = listed.models
    assert (item.model_id, item.name, item.model_format, item.deployed) == (
        model_id,
        "shared-embedder",
        "onnx",
        False,
    )
    assert item.registry is not None and item.registry.shared_model_key == model_id

    detail = models.get_model(model_id)
    assert isinstance(detail, mixpeek.OrgModelDetailResponse)
    assert detail.model.description == "a shared embedder" and detail.model.validation_status == "passed"
    assert detail.model.s3_archive_url.endswith(f"/.org/{model_id}.tar.gz")

    available = custom.list_available_org_models_namespaces("team-a")
    assert isinstance(available, mixpeek.AvailableOrgModelsResponse)
    assert available.namespace_id == "team-a" and available.total == 1
    assert available.models[0].model_id == model_id and available.models[0].enabled_in_namespace is False

    # A namespace key enables it in its namespace, and deploys it there.
    custom_a, _ = fresh.sdk(fresh.team_a)
    enabled = custom_a.enable_org_model_namespaces(
        "team-a", model_id, mixpeek.EnableOrgModelRequest(deploy=True)
    )
    assert isinstance(enabled, mixpeek.EnableOrgModelResponse)
    assert (enabled.model_id, enabled.namespace_id, enabled.deployment_status) == (
        model_id,
        "team-a",
        "pending",
    )
    (deploy,) = await commands_for(fresh.settings, model_id, expected=1)
    assert (deploy.command_type, deploy.namespace_id) == (CommandType.DEPLOY, "team-a")
    assert custom_a.list_available_org_models_namespaces("team-a").models[0].enabled_in_namespace is True
    assert custom.list_available_org_models_namespaces("team-b").models[0].enabled_in_namespace is False

    # The bridge reports it ready; the worker applies it to the namespace's copy.
    producer = kafka.make_producer(fresh.settings)
    await producer.start()
    try:
        ready = event(EventType.READY, 1, namespace_id="team-a", model_id=model_id)
        await producer.send_and_wait(fresh.settings.events_topic, encode(ready), key=ready.key.kafka_key())
    finally:
        await producer.stop()
    deadline = time.monotonic() + 30
    while True:
        details = custom_a.get_model_namespaces("team-a", model_id)
        assert isinstance(details, mixpeek.ModelDetailResponse)
        if details.model.deployed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert details.model.deployed is True and details.model.model_hash == detail.model.model_hash
    assert models.get_model(model_id).model.deployed is True
    assert models.get_model(model_id).model.to_dict().get("enabled_namespaces") in (None, ["team-a"])
    # Other namespaces are unaffected: not enabled there, not readable there.
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        custom.get_model_namespaces("team-b", model_id)

    # Deleting the shared model is refused while it is enabled.
    with pytest.raises(mixpeek.exceptions.ApiException) as refused:
        models.delete_model(model_id)
    assert refused.value.status == 409 and "org_model_enabled" in (refused.value.body or "")

    disabled = custom_a.disable_org_model_namespaces("team-a", model_id)
    assert isinstance(disabled, mixpeek.DisableOrgModelResponse)
    assert (disabled.model_id, disabled.namespace_id) == (model_id, "team-a")
    undeploys = [
        c
        for c in await commands_for(fresh.settings, model_id, expected=2)
        if c.command_type is CommandType.UNDEPLOY
    ]
    assert [c.namespace_id for c in undeploys] == ["team-a"]
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        custom_a.get_model_namespaces("team-a", model_id)
    assert custom.list_available_org_models_namespaces("team-a").models[0].enabled_in_namespace is False

    # Still there for everyone, archive included; the SDK's download_model expects a JSON object, the raw
    # variant gets the archive.
    raw = models.download_model_without_preload_content(model_id)
    assert raw.status == 200 and raw.data == ARCHIVE

    deleted = models.delete_model(model_id)
    assert (
        isinstance(deleted, mixpeek.OrgModelDeleteResponse)
        and deleted.model_id == model_id
        and deleted.message
    )
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        models.get_model(model_id)
    assert custom.list_available_org_models_namespaces("team-a").total == 0


async def test_writes_need_an_admin_key_and_reads_do_not(fresh: Stack) -> None:
    model_id = fresh.register().json()["model_id"]
    _, models_a = fresh.sdk(fresh.team_a)
    assert models_a.list_models().total == 1
    assert models_a.get_model(model_id).model.model_id == model_id
    with pytest.raises(mixpeek.exceptions.ForbiddenException):
        models_a.delete_model(model_id)
    assert models_a.download_model_without_preload_content(model_id).status == 403
    refused = httpx.post(
        f"{fresh.url}/v1/models",
        headers={"Authorization": f"Bearer {fresh.team_a}"},
        data={"name": "x", "version": "1", "model_format": "onnx"},
        files={"file": ("model.tar.gz", make_archive(), "application/gzip")},
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    # A namespace key cannot enable it in a namespace it does not hold.
    custom_a, _ = fresh.sdk(fresh.team_a)
    with pytest.raises(mixpeek.exceptions.ForbiddenException):
        custom_a.enable_org_model_namespaces("team-b", model_id)


async def test_static_routes_win_over_model_ids_and_the_shared_archive_outlives_a_copy(
    topics, db, make_key, settings
) -> None:
    from pathlib import Path

    from tests.api_support import api_client
    from tests.factories import seed_model_document

    await db.custom_models.insert_one(seed_model_document("ns_a", "available"))
    async with api_client(topics, await make_key(admin=True)) as client:
        registered = await client.post(
            "/v1/models",
            data={"name": "m", "version": "1", "model_format": "onnx"},
            files={"file": ("model.tar.gz", ARCHIVE, "application/gzip")},
        )
        model_id = registered.json()["model_id"]
        available = await client.get("/v1/namespaces/ns_a/models/available")
        assert available.status_code == 200 and available.json()["namespace_id"] == "ns_a"
        assert [m["model_id"] for m in available.json()["models"]] == [model_id]
        enabled = await client.post(f"/v1/namespaces/ns_a/models/org/{model_id}/enable")
        assert enabled.status_code == 200 and enabled.json()["deployment_status"] == "not_deployed"

        # Deleting the namespace's copy (same as disabling) leaves the shared archive alone.
        deleted = await client.delete(f"/v1/namespaces/ns_a/models/{model_id}")
        assert deleted.json()["deleted"] is True
        archive = Path(settings.archive_root).resolve() / ".org" / f"{model_id}.tar.gz"
        assert archive.read_bytes() == ARCHIVE
        assert (await client.delete(f"/v1/models/{model_id}")).status_code == 200
        assert not archive.exists()
        missing = await client.post(f"/v1/namespaces/ns_a/models/org/{model_id}/enable")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"


# --- the presigned flow of shared models, through the SDK's ModelsApi -------------------------------------


def put_archive(created: mixpeek.ModelPresignedURLResponse, archive: bytes = ARCHIVE) -> httpx.Response:
    # No API key: the signed URL is its own credential, as an S3 presigned URL is.
    content_type = created.required_content_type or "application/gzip"
    return httpx.put(
        created.presigned_url, content=archive, headers={"Content-Type": content_type}, timeout=30
    )


async def test_the_sdk_uploads_a_shared_model_through_a_presigned_url(fresh: Stack) -> None:
    _, models = fresh.sdk(fresh.admin)
    created = models.generate_upload_url_models(
        mixpeek.CreateModelUploadRequest(
            name="shared_embedder",
            version="1.0.0",
            model_format="onnx",
            description="uploaded in three steps",
            task_type="embedding",
            file_size_bytes=len(ARCHIVE),
            presigned_url_expiration=600,
            resource_requirements=mixpeek.ModelResourceRequirements(
                num_cpus=2, num_gpus=0, memory=2 * 1024**3
            ),
        )
    )
    assert isinstance(created, mixpeek.ModelPresignedURLResponse)
    assert created.organization_id == fresh.settings.organization_id
    assert (created.name, created.version, created.model_format) == ("shared_embedder", "1.0.0", "onnx")
    assert created.upload_id.startswith("upload_") and created.required_content_type == "application/gzip"
    assert created.presigned_url.startswith(f"{fresh.url}/v1/uploads/{created.upload_id}?")
    assert created.s3_key == f".uploads/{created.upload_id}.tar.gz"
    assert timedelta(minutes=9) < created.expires_at - datetime.now(UTC) <= timedelta(minutes=10)
    # Confirming before the bytes arrived is refused, and does not use the upload up.
    with pytest.raises(mixpeek.exceptions.ConflictException) as early:
        models.confirm_upload_models(created.upload_id)
    assert "upload_not_received" in (early.value.body or "")

    put = put_archive(created)
    assert put.status_code == 200, put.text
    assert put.json()["sha256"] == hashlib.sha256(ARCHIVE).hexdigest()

    confirmed = models.confirm_upload_models(
        created.upload_id, mixpeek.ConfirmModelUploadRequest(file_size_bytes=len(ARCHIVE))
    )
    assert isinstance(confirmed, mixpeek.ConfirmModelUploadResponse)
    assert confirmed.success is True and confirmed.validation_status == "passed"
    assert confirmed.upload_id == created.upload_id and confirmed.validation_errors == []
    model_id = confirmed.model_id
    assert model_id is not None and model_id.startswith("model_") and confirmed.message
    assert confirmed.s3_archive_url is not None and confirmed.s3_archive_url.endswith(
        f"/.org/{model_id}.tar.gz"
    )

    listed = models.list_models()
    assert [m.model_id for m in listed.models] == [model_id]
    detail = models.get_model(model_id)
    assert isinstance(detail, mixpeek.OrgModelDetailResponse)
    shared = detail.model
    assert (shared.name, shared.version, shared.description, shared.task_type) == (
        "shared_embedder",
        "1.0.0",
        "uploaded in three steps",
        "embedding",
    )
    assert shared.model_hash == hashlib.sha256(ARCHIVE).hexdigest()
    assert (
        shared.s3_archive_url == confirmed.s3_archive_url
        and shared.organization_id == created.organization_id
    )
    assert shared.resource_requirements is not None
    assert (shared.resource_requirements.num_cpus, shared.resource_requirements.memory) == (2, 2 * 1024**3)
    raw = models.download_model_without_preload_content(model_id)
    assert raw.status == 200 and raw.data == ARCHIVE
    # Nothing in any namespace until it is enabled there.
    custom, _ = fresh.sdk(fresh.admin)
    assert custom.list_available_org_models_namespaces("team-a").models[0].model_id == model_id
    assert await fresh.database.custom_models.count_documents({}) == 0

    # Used once: the URL and the confirmation; the same name and version again is refused upfront.
    assert put_archive(created).json()["error"]["code"] == "upload_already_used"
    with pytest.raises(mixpeek.exceptions.ConflictException) as reused:
        models.confirm_upload_models(created.upload_id)
    assert "upload_already_used" in (reused.value.body or "") and model_id in (reused.value.body or "")
    with pytest.raises(mixpeek.exceptions.ConflictException) as again:
        models.generate_upload_url_models(
            mixpeek.CreateModelUploadRequest(name="shared_embedder", version="1.0.0", model_format="onnx")
        )
    assert "model_version_exists" in (again.value.body or "")


async def test_presigned_shared_uploads_need_an_admin_key_a_live_upload_and_the_right_route(
    fresh: Stack,
) -> None:
    _, models = fresh.sdk(fresh.admin)
    _, models_a = fresh.sdk(fresh.team_a)
    request = mixpeek.CreateModelUploadRequest(name="shared_model", version="1.0.0", model_format="onnx")
    with pytest.raises(mixpeek.exceptions.ForbiddenException) as refused:
        models_a.generate_upload_url_models(request)
    assert "admin_required" in (refused.value.body or "")

    created = models.generate_upload_url_models(request)
    assert put_archive(created).status_code == 200
    with pytest.raises(mixpeek.exceptions.ForbiddenException):
        models_a.confirm_upload_models(created.upload_id)

    # A shared upload is not a namespace's, nor a namespace's upload a shared one.
    custom_headers = {"Authorization": f"Bearer {fresh.admin}"}
    as_namespace = httpx.post(
        f"{fresh.url}/v1/namespaces/team-a/models/uploads/{created.upload_id}/confirm",
        headers=custom_headers,
        timeout=30,
    )
    assert as_namespace.status_code == 404 and as_namespace.json()["error"]["code"] == "upload_not_found"
    in_namespace = httpx.post(
        f"{fresh.url}/v1/namespaces/team-a/models/uploads",
        headers=custom_headers,
        json={"name": "ns_model", "version": "1", "model_format": "onnx"},
        timeout=30,
    ).json()
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        models.confirm_upload_models(in_namespace["upload_id"])

    # Expired: refused (410, which the SDK raises as a plain ApiException), and never becomes a model.
    past = datetime.now(UTC) - timedelta(seconds=1)
    await fresh.database.model_uploads.update_one(
        {"upload_id": created.upload_id}, {"$set": {"expires_at": past}}
    )
    with pytest.raises(mixpeek.exceptions.ApiException) as expired:
        models.confirm_upload_models(created.upload_id)
    assert expired.value.status == 410 and "upload_expired" in (expired.value.body or "")
    assert models.list_models().total == 0


async def test_uploads_is_a_route_never_a_shared_model_id(fresh: Stack) -> None:
    # Litestar prefers the static segment: /v1/models/uploads only takes POST, so GET and DELETE answer
    # 405 rather than reaching /v1/models/{model_id}; shared model ids are generated as model_<hex>.
    from modelreg.services.api.models.registration import new_model_id
    from modelreg.shared.identifiers import RESERVED_MODEL_IDS

    assert "uploads" in RESERVED_MODEL_IDS
    assert all(new_model_id().startswith("model_") for _ in range(100))
    registered = fresh.register()
    assert registered.json()["model_id"].startswith("model_")
    auth = {"Authorization": f"Bearer {fresh.admin}"}
    for method in ("GET", "DELETE"):
        answer = httpx.request(method, f"{fresh.url}/v1/models/uploads", headers=auth, timeout=30)
        assert answer.status_code == 405, answer.text
    assert httpx.get(f"{fresh.url}/v1/models/uploads/x", headers=auth, timeout=30).status_code == 404
    _, models = fresh.sdk(fresh.admin)
    assert models.list_models().total == 1
