"""The shared-model service on the fakes of its ports: enable, disable, delete and their races."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg.services.api.domain_errors import ModelIdTaken, OrgModelInUse, OrgModelNotFound, VersionExists
from modelreg.services.api.org_models.schemas import EnableOrgModelRequest, ResourceOverrides
from modelreg.services.api.org_models.service import OrgModelService
from modelreg.shared.contracts import CommandType, ModelFormat, ModelKey
from modelreg.shared.documents import ModelDetails, OrgModelDetails
from modelreg.shared.identifiers import ORG_STORAGE_NAMESPACE
from modelreg.shared.settings import Settings
from tests.api_fakes import FakeArchiveStorage, FakeCommandPublisher, FakeModelStore, FakeOrgModelStore

SHARED_URL = f"file:///archives/{ORG_STORAGE_NAMESPACE}/model_shared.tar.gz"


class Parts:
    def __init__(self, tmp_path: Path) -> None:
        self.models = FakeModelStore()
        self.shared = FakeOrgModelStore(self.models)
        self.storage = FakeArchiveStorage(tmp_path)
        self.publisher = FakeCommandPublisher()
        self.service = OrgModelService(
            self.shared,
            self.models,
            self.storage,
            self.publisher,
            Settings(),  # type: ignore[arg-type]
        )
        self.shared.shared["model_shared"] = OrgModelDetails(
            model_id="model_shared",
            name="embedder",
            version="1",
            model_archive_url=SHARED_URL,
            model_format=ModelFormat.ONNX,
            model_hash="ab" * 32,
        )


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    return Parts(tmp_path)


async def test_enabling_copies_the_shared_model_into_the_namespace(parts: Parts) -> None:
    answer = await parts.service.namespaces.enable(
        "team-a", "model_shared", EnableOrgModelRequest(resource_overrides=ResourceOverrides(num_cpus=2))
    )
    assert (answer.deployment_status, answer.command_id) == ("not_deployed", None)
    copy = parts.models.models[ModelKey("team-a", "model_shared")]
    assert (copy.model_archive_url, copy.model_hash, copy.org_model_id) == (
        SHARED_URL,
        "ab" * 32,
        "model_shared",
    )
    assert copy.resource_requirements.num_cpus == 2 and parts.publisher.published == []

    again = await parts.service.namespaces.enable(
        "team-a", "model_shared", EnableOrgModelRequest(deploy=True)
    )
    assert again.deployment_status == "pending" and again.command_id is not None
    (command,) = parts.publisher.published
    assert (command.command_type, command.namespace_id) == (CommandType.DEPLOY, "team-a")
    available = await parts.service.namespaces.available("team-b")
    assert [m.enabled_in_namespace for m in available.models] == [False]


async def test_enabling_refuses_unknown_models_and_taken_names_or_ids(parts: Parts) -> None:
    with pytest.raises(OrgModelNotFound):
        await parts.service.namespaces.enable("team-a", "model_nope", EnableOrgModelRequest())
    own = ModelDetails(
        model_id="model_shared",
        namespace_id="team-a",
        name="own",
        version="1",
        model_archive_url="file:///x",
        model_format=ModelFormat.ONNX,
        model_hash="0" * 64,
    )
    parts.models.add(own)
    with pytest.raises(ModelIdTaken):
        await parts.service.namespaces.enable("team-a", "model_shared", EnableOrgModelRequest())
    parts.models.add(
        own.model_copy(update={"model_id": "model_other", "name": "embedder", "namespace_id": "b"})
    )
    with pytest.raises(VersionExists):
        await parts.service.namespaces.enable("b", "model_shared", EnableOrgModelRequest())


async def test_disabling_undeploys_removes_the_copy_and_keeps_the_shared_archive(parts: Parts) -> None:
    await parts.service.namespaces.enable("team-a", "model_shared", EnableOrgModelRequest(deploy=True))
    await parts.service.namespaces.enable("team-b", "model_shared", EnableOrgModelRequest())

    answer = await parts.service.namespaces.disable("team-a", "model_shared")

    assert answer.undeploy_command_id is not None
    assert [c.command_type for c in parts.publisher.published] == [CommandType.DEPLOY, CommandType.UNDEPLOY]
    assert ModelKey("team-a", "model_shared") not in parts.models.models
    assert ModelKey("team-b", "model_shared") in parts.models.models
    assert "model_shared" in parts.shared.shared
    # The fake storage deletes what it is asked to: the service asked for the namespace's own path only.
    assert parts.storage.deleted == [SHARED_URL]  # FakeArchiveStorage has no owns(); the real one refuses it
    again = await parts.service.namespaces.disable("team-a", "model_shared")
    assert again.message == "Shared model was not enabled"


async def test_deleting_is_refused_while_enabled_and_an_enable_racing_a_delete_is_undone(
    parts: Parts,
) -> None:
    await parts.service.namespaces.enable("team-a", "model_shared", EnableOrgModelRequest())
    with pytest.raises(OrgModelInUse) as refused:
        await parts.service.catalog.delete("model_shared")
    assert refused.value.details == {"model_id": "model_shared", "namespaces": ["team-a"]}
    assert parts.shared.shared["model_shared"].deleting is False

    await parts.service.namespaces.disable("team-a", "model_shared")

    # A deletion marks the model before it looks for copies: an enable that inserted its copy meanwhile
    # sees the mark afterwards and takes the copy back.
    async def deletion_marks_it(details: ModelDetails) -> None:
        await parts.shared.set_deleting("model_shared", True)

    parts.models.before_insert = deletion_marks_it
    with pytest.raises(OrgModelNotFound):
        await parts.service.namespaces.enable("team-b", "model_shared", EnableOrgModelRequest())
    assert ModelKey("team-b", "model_shared") not in parts.models.models
