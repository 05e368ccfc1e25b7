"""The models service on in-memory fakes of its ports: deployment requests, uploads and deletion.

The same behaviours are checked over HTTP against real servers in tests/integration/test_api_*.py; here each
rule and each failure path runs in milliseconds, including races a real server rarely shows.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelreg.services.api.domain_errors import (
    ArchiveRefused,
    BrokerUnavailable,
    ConcurrentRequest,
    InvalidField,
    ModelNotFound,
    TransitionInProgress,
    UnsupportedUpload,
    UploadTooLarge,
    VersionExists,
)
from modelreg.services.api.models.deployment_requests import MAX_REQUEST_ROUNDS
from modelreg.services.api.models.service import ModelService
from modelreg.shared.contracts import CommandType, DeploymentStatus, ModelFormat, ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import DeploymentInfoFields, ModelDetails
from modelreg.shared.settings import Settings
from tests.api_fakes import FakeArchiveStorage, FakeCommandPublisher, FakeModelStore
from tests.api_support import chunked, make_archive, multipart_body

KEY = ModelKey("ns", "m1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOUNDARY = "unit-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


class Clock:
    """Each reading one second after the previous one."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1)

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=next(self._ticks))


class Registry:
    def __init__(self, tmp_path: Path) -> None:
        self.store = FakeModelStore()
        self.storage = FakeArchiveStorage(tmp_path / "archives")
        self.publisher = FakeCommandPublisher()
        self.clock = Clock()
        self.settings = Settings(archive_root=str(tmp_path / "archives"))
        self.service = ModelService(self.store, self.storage, self.publisher, self.settings, self.clock)

    def model(self, key: ModelKey = KEY, **fields) -> ModelDetails:
        values = {
            "model_id": key.model_id,
            "namespace_id": key.namespace_id,
            "name": "resnet",
            "version": "1",
            "model_archive_url": f"file:///archives/{key}.tar.gz",
            "model_format": ModelFormat.ONNX,
            "model_hash": "0" * 64,
            "deployment_status": DeploymentStatus.NOT_DEPLOYED,
            "created_at": T0,
            "updated_at": T0,
        }
        return self.store.add(ModelDetails(**{**values, **fields}))

    def deployed_model(self, key: ModelKey = KEY) -> ModelDetails:
        return self.model(
            key,
            deployed=True,
            deployment_status=DeploymentStatus.DEPLOYED,
            deployment_info=DeploymentInfoFields(endpoint="http://serve/ns/m1", base_image="img"),
            last_event_sequence=1,
            observed_at=T0,
        )

    async def upload(
        self, fields: dict[str, str], archive: bytes | None = None, content_type: str = CONTENT_TYPE
    ):
        files = {"file": ("model.tar.gz", archive)} if archive is not None else {}
        body = multipart_body(fields, files, BOUNDARY)
        return await self.service.registration.upload("ns", chunked(body, 4096), content_type, len(body))


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path)


FORM = {"name": "resnet", "version": "2", "model_format": "onnx"}


# --- deployment requests ----------------------------------------------------------------------------------


async def test_a_deploy_request_records_the_wish_and_sends_one_command(registry) -> None:
    registry.model()

    response, sent = await registry.service.requests.request(KEY, DesiredState.DEPLOYED)

    assert sent and response.deployment_status == "pending"
    (command,) = registry.publisher.published
    assert command.command_type is CommandType.DEPLOY and command.key == KEY
    assert response.command_id == str(command.command_id)
    stored = registry.store.models[KEY]
    assert stored.desired_state is DesiredState.DEPLOYED and stored.desired_at == command.requested_at


@pytest.mark.parametrize(
    ("deployed", "desired", "status"),
    [(True, DesiredState.DEPLOYED, "deployed"), (False, DesiredState.NOT_DEPLOYED, "not_deployed")],
)
async def test_a_request_for_the_current_state_sends_nothing(registry, deployed, desired, status) -> None:
    registry.deployed_model() if deployed else registry.model()

    response, sent = await registry.service.requests.request(KEY, desired)

    assert not sent and response.deployment_status == status and response.command_id is None
    assert registry.publisher.published == []
    assert registry.store.models[KEY].desired_at is None


async def test_deploying_while_an_undeploy_runs_is_refused(registry) -> None:
    registry.model(deployment_status=DeploymentStatus.DELETING, last_event_sequence=1, observed_at=T0)

    with pytest.raises(TransitionInProgress) as refused:
        await registry.service.requests.request(KEY, DesiredState.DEPLOYED)

    assert refused.value.code == "transition_in_progress"
    assert refused.value.details == {"deployment_status": "deleting", "reason": "undeploy_in_progress"}
    assert registry.publisher.published == [] and registry.store.models[KEY].desired_at is None


async def test_a_request_that_loses_a_round_decides_again_on_fresh_data(registry) -> None:
    registry.deployed_model()
    rival_at = T0 + timedelta(hours=1)
    rounds = 0

    async def rival_undeploys_first(key: ModelKey) -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            registry.store.models[key] = registry.store.models[key].model_copy(
                update={"desired_state": DesiredState.NOT_DEPLOYED, "desired_at": rival_at}
            )

    registry.store.before_set_desired = rival_undeploys_first

    response, sent = await registry.service.requests.request(KEY, DesiredState.NOT_DEPLOYED)

    # Round 2 saw the rival's wish (deleting) and replaced it by compare-and-set on the rival's time.
    assert rounds == 2 and sent and response.deployment_status == "deleting"
    (command,) = registry.publisher.published
    assert registry.store.models[KEY].desired_at == command.requested_at != rival_at


async def test_a_request_that_keeps_losing_gives_up_without_sending(registry) -> None:
    registry.model()
    rounds = 0

    async def rival_always_wins(key: ModelKey) -> None:
        nonlocal rounds
        rounds += 1
        registry.store.models[key] = registry.store.models[key].model_copy(
            update={"desired_at": T0 - timedelta(seconds=rounds)}
        )

    registry.store.before_set_desired = rival_always_wins

    with pytest.raises(ConcurrentRequest) as gave_up:
        await registry.service.requests.request(KEY, DesiredState.DEPLOYED)

    assert gave_up.value.code == "concurrent_request"
    assert rounds == MAX_REQUEST_ROUNDS and registry.publisher.published == []


async def test_a_command_the_broker_refuses_takes_the_wish_back(registry) -> None:
    registry.model(desired_state=DesiredState.NOT_DEPLOYED, desired_at=T0)
    registry.publisher.broker_down = True

    with pytest.raises(BrokerUnavailable) as unavailable:
        await registry.service.requests.request(KEY, DesiredState.DEPLOYED)

    assert unavailable.value.code == "command_not_published"
    stored = registry.store.models[KEY]
    assert (stored.desired_state, stored.desired_at) == (DesiredState.NOT_DEPLOYED, T0)


async def test_taking_the_wish_back_never_overwrites_a_newer_one(registry) -> None:
    registry.model()
    registry.publisher.broker_down = True
    newer_at = T0 + timedelta(hours=1)
    calls = 0

    async def newer_request_lands_before_the_rollback(key: ModelKey) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            registry.store.models[key] = registry.store.models[key].model_copy(
                update={"desired_state": DesiredState.NOT_DEPLOYED, "desired_at": newer_at}
            )

    registry.store.before_set_desired = newer_request_lands_before_the_rollback

    with pytest.raises(BrokerUnavailable):
        await registry.service.requests.request(KEY, DesiredState.DEPLOYED)

    stored = registry.store.models[KEY]
    assert (stored.desired_state, stored.desired_at) == (DesiredState.NOT_DEPLOYED, newer_at)


async def test_requests_for_an_unknown_model_are_not_found(registry) -> None:
    with pytest.raises(ModelNotFound) as missing:
        await registry.service.requests.request(KEY, DesiredState.DEPLOYED)
    assert missing.value.details == {"resource": "model", "namespace_id": "ns", "model_id": "m1"}


# --- uploads ----------------------------------------------------------------------------------------------


async def test_an_upload_stores_the_archive_and_inserts_its_record(registry) -> None:
    archive = make_archive()

    response = await registry.upload({**FORM, "num_cpus": "2", "memory_gb": "0.5"}, archive)

    key = ModelKey("ns", response.model_id)
    stored = registry.store.models[key]
    assert (stored.name, stored.version, stored.model_format) == ("resnet", "2", ModelFormat.ONNX)
    assert stored.resource_requirements.num_cpus == 2 and stored.resource_requirements.memory == 512 * 1024**2
    assert stored.created_at == stored.updated_at == T0 + timedelta(seconds=1)
    assert response.model_archive_url == stored.model_archive_url
    assert Path(stored.model_archive_url.removeprefix("file://")).read_bytes() == archive
    assert list(registry.storage.incoming_dir.iterdir()) == []


async def test_an_existing_name_and_version_is_refused_before_storing(registry) -> None:
    registry.model(name="resnet", version="2")

    with pytest.raises(VersionExists) as exists:
        await registry.upload(FORM, make_archive())

    assert exists.value.details == {"name": "resnet", "version": "2", "model_id": "m1"}
    assert registry.storage.stored() == [] and list(registry.storage.incoming_dir.iterdir()) == []


async def test_a_racing_upload_of_the_same_version_leaves_no_archive(registry) -> None:
    async def rival_inserts_first(details: ModelDetails) -> None:
        registry.model(ModelKey("ns", "rival"), name=details.name, version=details.version)

    registry.store.before_insert = rival_inserts_first

    with pytest.raises(VersionExists) as exists:
        await registry.upload(FORM, make_archive())

    assert exists.value.details["model_id"] == "rival"
    assert registry.storage.stored() == [] and len(registry.storage.deleted) == 1


async def test_a_failed_insert_removes_the_stored_archive(registry) -> None:
    async def database_fails(_: ModelDetails) -> None:
        raise RuntimeError("database went away")

    registry.store.before_insert = database_fails

    with pytest.raises(RuntimeError):
        await registry.upload(FORM, make_archive())

    assert registry.storage.stored() == [] and len(registry.storage.deleted) == 1
    assert registry.store.models == {}


async def test_an_unsafe_archive_is_refused_with_its_reason(registry) -> None:
    with pytest.raises(ArchiveRefused) as refused:
        await registry.upload(FORM, b"not a tar.gz")

    assert refused.value.code == "invalid_archive"
    assert refused.value.details == {"filename": "model.tar.gz"}
    assert registry.storage.stored() == [] and registry.store.models == {}
    assert list(registry.storage.incoming_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("fields", "archive", "field"),
    [
        ({"version": "2", "model_format": "onnx"}, make_archive(), "name"),
        ({**FORM, "model_format": "tensorflow"}, make_archive(), "model_format"),
        ({**FORM, "file": "not a file"}, make_archive(), "file"),
        (FORM, None, "file"),
    ],
    ids=["missing", "not-a-format", "file-as-text", "no-archive"],
)
async def test_invalid_fields_are_named(registry, fields, archive, field) -> None:
    with pytest.raises(InvalidField) as invalid:
        await registry.upload(fields, archive)
    assert invalid.value.field == field
    assert registry.storage.stored() == [] and registry.store.models == {}


async def test_an_oversized_upload_is_refused_before_reading(registry) -> None:
    async def unread_body():
        raise AssertionError("the body was read")
        yield b""

    with pytest.raises(UploadTooLarge) as refused:
        await registry.service.registration.upload(
            "ns", unread_body(), CONTENT_TYPE, registry.settings.max_archive_bytes * 2
        )

    assert refused.value.code == "archive_too_large"
    assert refused.value.details == {"max_archive_bytes": registry.settings.max_archive_bytes}


async def test_an_upload_must_be_multipart(registry) -> None:
    with pytest.raises(UnsupportedUpload) as refused:
        await registry.upload(FORM, make_archive(), content_type="application/json")
    assert refused.value.code == "multipart_required"


# --- deletion ---------------------------------------------------------------------------------------------


async def test_deleting_a_model_that_is_not_deployed_sends_nothing(registry) -> None:
    model = registry.model()

    response = await registry.service.deletion.delete(KEY)

    assert response.deleted and response.undeploy_command_id is None
    assert registry.publisher.published == [] and KEY not in registry.store.models
    assert registry.storage.deleted == [model.model_archive_url]


async def test_deleting_a_deployed_model_undeploys_it_first(registry) -> None:
    registry.deployed_model()

    response = await registry.service.deletion.delete(KEY)

    (command,) = registry.publisher.published
    assert command.command_type is CommandType.UNDEPLOY and command.key == KEY
    assert response.deleted and response.undeploy_command_id == str(command.command_id)
    assert KEY not in registry.store.models


async def test_a_deployed_model_stays_when_the_undeploy_cannot_be_sent(registry) -> None:
    registry.deployed_model()
    registry.publisher.broker_down = True

    with pytest.raises(BrokerUnavailable):
        await registry.service.deletion.delete(KEY)

    assert KEY in registry.store.models and registry.storage.deleted == []


async def test_an_archive_that_cannot_be_removed_does_not_fail_the_delete(registry) -> None:
    registry.model()
    registry.storage.fail_delete = OSError("read-only")

    response = await registry.service.deletion.delete(KEY)

    assert response.deleted and KEY not in registry.store.models


async def test_deleting_a_model_that_is_gone_answers_the_same_way(registry) -> None:
    response = await registry.service.deletion.delete(KEY)
    assert not response.deleted and response.model_id == "m1" and registry.publisher.published == []


# --- reads ------------------------------------------------------------------------------------------------


async def test_details_show_a_pending_request_until_it_is_observed(registry) -> None:
    registry.model(desired_state=DesiredState.DEPLOYED, desired_at=T0 + timedelta(seconds=5))

    body = await registry.service.reads.get_details(KEY)

    assert body.model.deployment_status == "pending" and body.model.model_id == "m1"
    with pytest.raises(ModelNotFound):
        await registry.service.reads.get_details(ModelKey("ns", "other"))
