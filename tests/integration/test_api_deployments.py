"""Deploy, undeploy and delete through the API: the desired state in MongoDB and the commands on Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from modelreg.services.devstack.embedded import free_port
from modelreg.shared.contracts import COMMAND_DECODER, CommandType, DeploymentCommand
from tests.api_support import SharedApi, api_client, shared_api, upload
from tests.factories import seed_model_document
from tests.integration.test_api_models import seed_validator

BASE = "/v1/namespaces/ns_a/models"


@dataclass
class Space:
    """A test's own namespace (and a key for it alone) in the module's shared app, database and topics."""

    api: SharedApi
    namespace: str

    @property
    def client(self):
        return self.api.app_client

    @property
    def db(self):
        return self.api.db

    @property
    def base(self) -> str:
        return f"/v1/namespaces/{self.namespace}/models"

    def model(self, model_id: str, **fields) -> dict:
        return seed_model_document(self.namespace, model_id, **fields)

    async def stored(self, model_id: str) -> dict | None:
        return await self.db.custom_models.find_one({"namespace_id": self.namespace, "model_id": model_id})

    async def count(self) -> int:
        return await self.db.custom_models.count_documents({"namespace_id": self.namespace})


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app, database and set of topics for the module; each test works in a namespace of its own."""
    async with shared_api(infra, tmp_path_factory.mktemp("deployments"), authenticated=False) as api:
        yield api


@pytest.fixture
async def space(shared: SharedApi) -> AsyncIterator[Space]:
    async with shared.own_namespace() as (namespace, _):
        yield Space(shared, namespace)


async def commands(space: Space, expected: int) -> list[DeploymentCommand]:
    """The commands for the test's namespace on the shared topic: at least `expected`, and any more
    already there."""
    consumer = AIOKafkaConsumer(
        space.api.settings.commands_topic,
        bootstrap_servers=space.api.settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[DeploymentCommand] = []
    try:

        async def poll() -> None:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    command = COMMAND_DECODER.decode(record.value)
                    assert record.key == command.key.kafka_key()
                    if command.namespace_id == space.namespace:
                        found.append(command)

        deadline = time.monotonic() + 30
        while len(found) < expected and time.monotonic() < deadline:
            await poll()
        await poll()  # anything beyond `expected` that is already there
    finally:
        await consumer.stop()
    return found


def observed(status: str, **fields) -> dict:
    """A model as the worker leaves it after observing `status`."""
    return {
        "deployment_status": status,
        "last_event_sequence": 5,
        "observed_at": datetime(2026, 1, 2, tzinfo=UTC),
        **fields,
    }


def deployed_fields() -> dict:
    return observed(
        "deployed",
        deployed=True,
        deployment_info={"endpoint": "http://serve/ns_a/m", "base_image": "img", "deployed_at": None},
    )


async def status_of(client, model_id: str, base: str = BASE) -> str:
    response = await client.get(f"{base}/{model_id}")
    assert response.status_code == 200
    return response.json()["model"]["deployment_status"]


def request_body(response, status: int) -> dict:
    """An undeploy answer: this API's own DeploymentRequestResponse."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "model_id", "deployment_status", "command_id"}
    return body


DEPLOY_FIELDS = {
    "success",
    "model_id",
    "namespace_id",
    "deployment_status",
    "cached",
    "message",
    "command_id",
}


def deploy_body(response, namespace: str) -> dict:
    """A deploy answer: always 200, Mixpeek's ModelDeployResponse plus command_id."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == DEPLOY_FIELDS
    assert body["namespace_id"] == namespace and isinstance(body["message"], str) and body["message"]
    assert "preference-applied" not in response.headers
    return body


async def test_deploy_records_the_wish_and_publishes_one_keyed_command(space) -> None:
    client, ns = space.client, space.namespace
    await space.db.custom_models.insert_one(space.model("m1"))

    body = deploy_body(await client.post(f"{space.base}/m1/deploy"), ns)

    assert body["deployment_status"] == "pending" and body["model_id"] == "m1"
    assert body["success"] is True and body["cached"] is False
    (command,) = await commands(space, 1)
    assert command.command_type is CommandType.DEPLOY
    assert (command.namespace_id, command.model_id) == (ns, "m1")
    assert str(command.command_id) == body["command_id"]
    stored = await space.stored("m1")
    assert stored is not None
    assert stored["desired_state"] == "deployed" and stored["desired_at"] is not None
    # The API writes the wish only; the observed state is the worker's.
    assert stored["deployed"] is False and "deployment_status" not in stored
    assert await status_of(client, "m1", space.base) == "pending"


async def test_repeating_a_request_in_flight_sends_the_command_again(space) -> None:
    client, ns = space.client, space.namespace
    await space.db.custom_models.insert_one(space.model("m1"))

    first = deploy_body(await client.post(f"{space.base}/m1/deploy"), ns)
    again = deploy_body(await client.post(f"{space.base}/m1/deploy"), ns)

    assert again["deployment_status"] == "pending" and again["command_id"] != first["command_id"]
    assert [c.command_type for c in await commands(space, 2)] == [CommandType.DEPLOY] * 2


async def test_requests_that_change_nothing_answer_200_without_a_command(space) -> None:
    client, base = space.client, space.base
    await space.db.custom_models.insert_one(space.model("up", **deployed_fields()))
    await space.db.custom_models.insert_one(space.model("down"))

    already_up = deploy_body(await client.post(f"{base}/up/deploy"), space.namespace)
    already_down = request_body(await client.delete(f"{base}/down/deploy"), 200)

    assert (already_up["deployment_status"], already_up["command_id"]) == ("deployed", None)
    assert already_up["cached"] is True and already_up["success"] is True
    assert (already_down["deployment_status"], already_down["command_id"]) == ("not_deployed", None)
    # The only command of the namespace on the topic is the one sent after them.
    request_body(await client.delete(f"{base}/up/deploy"), 202)
    assert [(c.command_type, c.model_id) for c in await commands(space, 1)] == [(CommandType.UNDEPLOY, "up")]


async def test_undeploy_reports_deleting_and_deploying_during_it_is_refused(space) -> None:
    client, base = space.client, space.base
    await space.db.custom_models.insert_one(space.model("m1", **deployed_fields()))

    undeploy = request_body(await client.delete(f"{base}/m1/deploy"), 202)
    assert undeploy["deployment_status"] == "deleting"

    refused = await client.post(f"{base}/m1/deploy")
    assert refused.status_code == 409
    body = refused.json()
    seed_validator("ErrorResponse").validate(body)
    assert body["error"]["type"] == "ConflictError" and body["error"]["code"] == "transition_in_progress"
    assert body["error"]["details"] == {"deployment_status": "deleting", "reason": "undeploy_in_progress"}
    assert await status_of(client, "m1", base) == "deleting"
    assert [c.command_type for c in await commands(space, 1)] == [CommandType.UNDEPLOY]


async def test_undeploying_a_pending_model_cancels_its_deployment(space) -> None:
    client, base = space.client, space.base
    await space.db.custom_models.insert_one(space.model("m1"))

    deploy_body(await client.post(f"{base}/m1/deploy"), space.namespace)
    cancel = request_body(await client.delete(f"{base}/m1/deploy"), 202)

    assert cancel["deployment_status"] == "not_deployed"  # nothing was observed deployed yet
    assert [c.command_type for c in await commands(space, 2)] == [CommandType.DEPLOY, CommandType.UNDEPLOY]


@pytest.mark.parametrize("status", ["failed", "unhealthy"])
async def test_failed_or_unhealthy_models_can_be_deployed_again(space, status) -> None:
    await space.db.custom_models.insert_one(space.model("m1", **observed(status)))

    body = deploy_body(await space.client.post(f"{space.base}/m1/deploy"), space.namespace)
    assert body["deployment_status"] == "pending"
    assert [c.command_type for c in await commands(space, 1)] == [CommandType.DEPLOY]


async def test_deploying_an_unknown_model_is_404(space) -> None:
    client, base = space.client, space.base
    for response in (await client.post(f"{base}/nope/deploy"), await client.delete(f"{base}/nope/deploy")):
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Model not found"


@pytest.fixture
def no_broker(settings):
    """Settings whose Kafka address has nothing listening."""
    return msgspec.structs.replace(
        settings, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", api_command_timeout_s=3.0
    )


async def test_without_a_broker_a_request_records_nothing_and_answers_503(no_broker, db, make_key) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    before = await db.custom_models.find_one({"model_id": "m1"})
    async with api_client(no_broker, await make_key("ns_a")) as client:
        response = await client.post(f"{BASE}/m1/deploy")

        assert response.status_code == 503
        body = response.json()
        seed_validator("ErrorResponse").validate(body)
        assert body["error"]["type"] == "ServiceUnavailableError"
        assert body["error"]["code"] == "command_not_published"
        after = await db.custom_models.find_one({"model_id": "m1"})
        assert after["desired_state"] is None and after["desired_at"] is None and after["desired_by"] is None
        desired = ("desired_state", "desired_at", "desired_by", "updated_at")
        unchanged = {k: v for k, v in after.items() if k not in desired}
        assert unchanged == {k: v for k, v in before.items() if k != "updated_at"}
        assert await status_of(client, "m1") == "not_deployed"
        # Reads do not need the broker.
        assert (await client.get(BASE)).status_code == 200


async def test_without_a_broker_a_deployed_model_is_not_deleted(no_broker, db, make_key) -> None:
    async with api_client(no_broker, await make_key("ns_a")) as client:
        uploaded = (await upload(client, "ns_a")).json()
        await db.custom_models.update_one({"model_id": uploaded["model_id"]}, {"$set": deployed_fields()})

        response = await client.delete(f"{BASE}/{uploaded['model_id']}")

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "command_not_published"
        assert await db.custom_models.count_documents({"model_id": uploaded["model_id"]}) == 1
        assert archive_path(uploaded["model_archive_url"]).is_file()


# --- deleting models


def archive_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


async def test_deleting_an_undeployed_model_removes_record_and_archive(space) -> None:
    client, base = space.client, space.base
    uploaded = (await upload(client, space.namespace)).json()
    path = archive_path(uploaded["model_archive_url"])
    assert path.is_file()

    response = await client.delete(f"{base}/{uploaded['model_id']}")

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "model_id": uploaded["model_id"],
        "message": "Model deleted",
        "deleted": True,
        "undeploy_command_id": None,
    }
    assert await space.count() == 0  # the namespace's only model
    assert not path.exists()
    assert (await client.get(f"{base}/{uploaded['model_id']}")).status_code == 404
    again = await client.delete(f"{base}/{uploaded['model_id']}")
    assert again.status_code == 200
    assert again.json() == {
        "success": True,
        "model_id": uploaded["model_id"],
        "message": "Model not found; nothing was deleted",
        "deleted": False,
        "undeploy_command_id": None,
    }


async def test_deleting_a_deployed_model_sends_undeploy_first(space) -> None:
    await space.db.custom_models.insert_one(space.model("m1", **deployed_fields()))

    response = await space.client.delete(f"{space.base}/m1")

    assert response.status_code == 200
    body = response.json()
    assert body["deleted"] is True and body["undeploy_command_id"]
    assert body["message"] == "Model deleted; an undeploy command was sent for its deployment"
    (command,) = await commands(space, 1)
    assert (
        command.command_type is CommandType.UNDEPLOY
        and str(command.command_id) == body["undeploy_command_id"]
    )
    assert await space.count() == 0  # the namespace's only model


async def test_archives_the_registry_did_not_write_are_left_alone(space, tmp_path) -> None:
    foreign = tmp_path / "elsewhere" / "keep.tar.gz"
    foreign.parent.mkdir()
    foreign.write_bytes(b"not ours")
    await space.db.custom_models.insert_one(space.model("m1", model_archive_url=foreign.as_uri()))

    assert (await space.client.delete(f"{space.base}/m1")).json()["deleted"] is True
    assert foreign.read_bytes() == b"not ours"


async def test_concurrent_requests_each_get_a_consistent_answer(space) -> None:
    client = space.client
    await space.db.custom_models.insert_one(space.model("m1"))

    responses = await asyncio.gather(*(client.post(f"{space.base}/m1/deploy") for _ in range(6)))

    accepted = [r for r in responses if r.status_code == 200]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "concurrent_request"
        else:
            assert deploy_body(response, space.namespace)["deployment_status"] == "pending"
    assert accepted
    sent = await commands(space, len(accepted))
    assert sorted(str(c.command_id) for c in sent) == sorted(r.json()["command_id"] for r in accepted)
    stored = await space.stored("m1")
    assert stored is not None and stored["desired_state"] == "deployed"
