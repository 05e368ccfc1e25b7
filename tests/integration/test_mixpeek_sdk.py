"""The official Mixpeek SDK (`mixpeek.CustomModelsApi`, pinned in requirements-dev) against a real API.

Every namespace route the SDK can call answers in the shape the SDK parses; the tests check the parsed
objects, not only status codes. The SDK's own upload cannot send an archive (see docs/api.md), so the
upload answer is checked against the SDK's `ModelUploadResponse` model instead, and the SDK's failure is
pinned down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.contracts import ModelKey
from modelreg.shared.serve_routes import model_endpoint
from modelreg.shared.settings import Settings
from tests.api_support import make_archive
from tests.conftest import insert_api_key, make_settings, read_topic
from tests.factories import seed_model_document
from tests.mixpeek_sdk import mixpeek

NS = "ns_sdk"


class Server:
    def __init__(self, settings: Settings, key: str, database: Any) -> None:
        self.settings = settings
        self.key = key
        self.database = database
        self.url = f"http://127.0.0.1:{settings.api_port}"


@pytest.fixture(scope="module")
async def server(infra, tmp_path_factory) -> AsyncIterator[Server]:
    """One API process for the module: the SDK speaks HTTP through urllib3, not the ASGI test client."""
    settings = make_settings(
        infra, archive_root=str(tmp_path_factory.mktemp("archives")), api_port=free_port()
    )
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    client = await mongo.connect(settings)
    database = client[settings.mongodb_database]
    key = await insert_api_key(database, settings, admin=True)
    process = ServiceProcess("api", settings, tmp_path_factory.mktemp("api") / "api.log").start()
    await process.wait_listening(settings.api_port)
    yield Server(settings, key, database)
    process.stop()
    await client.drop_database(settings.mongodb_database)
    await client.close()


@pytest.fixture
async def api(server: Server) -> AsyncIterator[mixpeek.CustomModelsApi]:
    await server.database.custom_models.delete_many({})  # each test starts without models
    configuration = mixpeek.Configuration(host=server.url, access_token=server.key)
    with mixpeek.ApiClient(configuration) as client:
        yield mixpeek.CustomModelsApi(client)


def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a (blocking) SDK call off the event loop, so the test can act on the database meanwhile."""
    return asyncio.to_thread(function, *args, **kwargs)


def deployed_document(model_id: str, **fields: Any) -> dict[str, Any]:
    return seed_model_document(
        NS,
        model_id,
        deployed=True,
        deployment_status="deployed",
        last_event_sequence=3,
        deployment_info={
            "ray_cluster_url": None,
            "ray_deployment_name": f"onnx-{'0' * 16}",
            "endpoint": f"http://127.0.0.1:8001/{NS}/{model_id}",
            "base_image": "modelreg/serve-onnx:latest",
            "deployed_at": None,
        },
        **fields,
    )


async def upload_raw(server: Server, **fields: str) -> httpx.Response:
    """The upload as docs/api.md shows it with curl: a real file part."""
    form = {"name": "resnet", "version": "1.0.0", "model_format": "onnx", **fields}
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.post(
            f"/v1/namespaces/{NS}/models",
            headers={"Authorization": f"Bearer {server.key}"},
            data=form,
            files={"file": ("model.tar.gz", make_archive(), "application/gzip")},
        )


# --- upload: the answer parses as the SDK's ModelUploadResponse ------------------------------------------


async def test_the_upload_answer_is_the_sdks_model_upload_response(server: Server, api) -> None:
    response = await upload_raw(server, task_type="classification", num_cpus="0.5")
    assert response.status_code == 201, response.text

    parsed = mixpeek.ModelUploadResponse.from_json(response.text)

    assert parsed is not None and parsed.success is True and parsed.deployment_status == "not_deployed"
    # The URL Ray Serve will serve the model at once deployed (the bridge publishes the same one).
    assert parsed.endpoint == model_endpoint(server.settings, ModelKey(NS, parsed.model_id))
    assert parsed.endpoint == f"http://127.0.0.1:{server.settings.serve_port}/{NS}/{parsed.model_id}"
    assert parsed.model_archive_url == response.json()["model_archive_url"]

    details = await call(api.get_model_namespaces, NS, parsed.model_id)
    assert details.model.task_type == "classification" and details.model.resource_requirements.num_cpus == 0.5


async def test_the_sdks_own_upload_cannot_send_an_archive(api) -> None:
    # A float num_cpus: urllib3's multipart encoder only takes str or bytes values.
    with pytest.raises(TypeError):
        await call(api.upload_model_namespaces, NS, "model.tar.gz", "resnet", "1", "onnx", num_cpus=0.5)
    # `file` is typed as a string and sent as a plain text field, not a file part: no archive arrives.
    with pytest.raises(mixpeek.exceptions.UnprocessableEntityException) as refused:
        await call(api.upload_model_namespaces, NS, "model.tar.gz", "resnet", "1", "onnx")
    body = json.loads(refused.value.body)
    assert body["detail"][0]["loc"] == ["body", "file"], body


# --- get ------------------------------------------------------------------------------------------------


async def test_get_parses_the_details(server: Server, api) -> None:
    await server.database.custom_models.insert_one(deployed_document("m_up", framework="onnxruntime"))

    details = await call(api.get_model_namespaces, NS, "m_up")

    assert isinstance(details, mixpeek.ModelDetailResponse) and details.success is True
    model = details.model
    assert (model.model_id, model.namespace_id, model.model_format, model.framework) == (
        "m_up",
        NS,
        "onnx",
        "onnxruntime",
    )
    assert model.deployed is True and model.deployment_info.endpoint == f"http://127.0.0.1:8001/{NS}/m_up"
    assert model.created_at.tzinfo is not None


async def test_a_missing_model_raises_not_found_with_the_error_parsed(api) -> None:
    with pytest.raises(mixpeek.exceptions.NotFoundException) as missing:
        await call(api.get_model_namespaces, NS, "nope")

    error = missing.value.data
    assert isinstance(error, mixpeek.ErrorResponse)
    assert (error.success, error.status, error.error.message) == (False, 404, "Model not found")


async def test_an_id_outside_the_rule_raises_unprocessable_entity(api) -> None:
    with pytest.raises(mixpeek.exceptions.UnprocessableEntityException) as refused:
        await call(api.get_model_namespaces, "-rf", "m1")
    assert json.loads(refused.value.body)["detail"][0]["loc"] == ["path", "namespace_id"]


# --- list -----------------------------------------------------------------------------------------------


async def test_list_parses_with_source_endpoint_and_namespace(server: Server, api) -> None:
    await server.database.custom_models.insert_many(
        [deployed_document("m_up"), seed_model_document(NS, "m_down"), seed_model_document("other", "m_x")]
    )

    listed = await call(api.list_models_namespaces, NS)

    assert isinstance(listed, mixpeek.ModelListResponse)
    assert (listed.success, listed.total, listed.namespace_id) == (True, 2, NS)
    by_id = {item.model_id: item for item in listed.models}
    assert set(by_id) == {"m_up", "m_down"}
    assert all(isinstance(item, mixpeek.ModelListItem) for item in listed.models)
    assert {item.source for item in listed.models} == {"customer"}
    assert by_id["m_up"].deployed is True and by_id["m_up"].endpoint == f"http://127.0.0.1:8001/{NS}/m_up"
    assert by_id["m_down"].deployed is False and by_id["m_down"].endpoint is None
    assert by_id["m_down"].name == "name-m_down" and by_id["m_down"].created_at.tzinfo is not None


async def test_an_empty_namespace_lists_nothing(api) -> None:
    listed = await call(api.list_models_namespaces, "ns_empty")
    assert (listed.models, listed.total, listed.namespace_id) == ([], 0, "ns_empty")


# --- deploy ---------------------------------------------------------------------------------------------


async def test_deploy_parses_pending_with_its_command(server: Server, api) -> None:
    await server.database.custom_models.insert_one(seed_model_document(NS, "m1"))

    answer = await call(api.deploy_model_namespaces_with_http_info, NS, "m1")

    assert answer.status_code == 200
    deployed = answer.data
    assert isinstance(deployed, mixpeek.ModelDeployResponse)
    assert (deployed.success, deployed.model_id, deployed.namespace_id) == (True, "m1", NS)
    assert (deployed.deployment_status, deployed.cached) == ("pending", False) and deployed.message
    command_id = json.loads(answer.raw_data)["command_id"]  # this API's addition, beyond the SDK's model
    (record,) = await read_topic(server.settings, server.settings.commands_topic, expected=1)
    assert json.loads(record.value)["command_id"] == command_id
    assert "preference-applied" not in (answer.headers or {})  # ApiResponse lowercases them


async def test_deploying_a_deployed_model_parses_as_cached(server: Server, api) -> None:
    await server.database.custom_models.insert_one(deployed_document("m_up"))

    deployed = await call(api.deploy_model_namespaces, NS, "m_up")

    assert (deployed.deployment_status, deployed.cached, deployed.success) == ("deployed", True, True)
    assert deployed.message == "Model already deployed"


async def observe_when_requested(server: Server, model_id: str, status: str, message: str | None) -> None:
    """Do what the worker does once the bridge reports: write the observed state, newer than the request."""
    models = server.database.custom_models
    for _ in range(600):
        stored = await models.find_one({"model_id": model_id})
        if stored.get("desired_at") is not None:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the deploy request was never recorded")
    observed = {
        "deployment_status": status,
        "deployed": status == "deployed",
        "deployment_message": message,
        "last_event_sequence": 9,
        "observed_at": stored["desired_at"] + timedelta(seconds=1),
    }
    await models.update_one({"model_id": model_id}, {"$set": observed})


@pytest.mark.parametrize(
    ("status", "message", "success"),
    [("deployed", None, True), ("failed", "onnxruntime: invalid model", False)],
)
async def test_prefer_wait_answers_with_the_observed_outcome(
    server: Server, api, status: str, message: str | None, success: bool
) -> None:
    await server.database.custom_models.insert_one(seed_model_document(NS, "m1"))

    # The wait is far longer than the test needs: the answer comes as soon as the outcome is stored.
    request = call(api.deploy_model_namespaces_with_http_info, NS, "m1", _headers={"Prefer": "wait=60"})
    answer, _ = await asyncio.gather(request, observe_when_requested(server, "m1", status, message))

    assert answer.status_code == 200 and answer.headers["preference-applied"] == "wait=60"
    deployed = answer.data
    assert (deployed.deployment_status, deployed.success, deployed.cached) == (status, success, False)
    if message:
        assert message in deployed.message


async def test_a_wait_beyond_the_cap_is_capped(server: Server, api) -> None:
    await server.database.custom_models.insert_one(seed_model_document(NS, "m1"))
    asked = server.settings.api_max_deploy_wait_s * 100

    request = call(api.deploy_model_namespaces_with_http_info, NS, "m1", _headers={"Prefer": f"wait={asked}"})
    answer, _ = await asyncio.gather(request, observe_when_requested(server, "m1", "deployed", None))

    assert answer.headers["preference-applied"] == f"wait={server.settings.api_max_deploy_wait_s}"
    assert answer.data.deployment_status == "deployed"


async def test_deploy_errors_raise_with_the_seed_error_body(server: Server, api) -> None:
    with pytest.raises(mixpeek.exceptions.NotFoundException) as missing:
        await call(api.deploy_model_namespaces, NS, "nope")
    assert missing.value.data.error.message == "Model not found"

    await server.database.custom_models.insert_one(
        seed_model_document(NS, "m_del", deployment_status="deleting", last_event_sequence=2)
    )
    with pytest.raises(mixpeek.exceptions.ConflictException) as conflict:
        await call(api.deploy_model_namespaces, NS, "m_del")
    error = mixpeek.ErrorResponse.from_json(conflict.value.body)
    assert error is not None and error.status == 409 and error.error.code == "transition_in_progress"


# --- delete ---------------------------------------------------------------------------------------------


async def test_delete_parses_with_its_message(server: Server, api) -> None:
    uploaded = await upload_raw(server)
    model_id = uploaded.json()["model_id"]

    deleted = await call(api.delete_model_namespaces, NS, model_id)
    again = await call(api.delete_model_namespaces, NS, model_id)

    assert isinstance(deleted, mixpeek.ModelDeleteResponse)
    assert (deleted.success, deleted.model_id, deleted.message) == (True, model_id, "Model deleted")
    assert again.message == "Model not found; nothing was deleted"
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        await call(api.get_model_namespaces, NS, model_id)


def test_every_namespace_route_of_the_sdk_is_covered() -> None:
    """The SDK's CustomModelsApi calls this module drives (org-model calls are the shared models' tests)."""
    calls = {
        name for name in vars(mixpeek.CustomModelsApi) if not name.startswith("_") and "_with" not in name
    }
    own = {name for name in calls if "org" not in name}
    assert own == {
        "delete_model_namespaces",
        "deploy_model_namespaces",
        "get_model_namespaces",
        "list_models_namespaces",
        "upload_model_namespaces",
    }
