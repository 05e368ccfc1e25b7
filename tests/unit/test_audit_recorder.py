"""The audit recorder (services/audit/recorder.py) on the in-memory audit log: written ahead of the write,
settled after it, never lost once the write happened; and the models service recording its writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelreg.services.api.domain_errors import ModelNotFound, TransitionInProgress
from modelreg.services.api.models.schemas import ModelPatch
from modelreg.services.api.models.service import ModelService
from modelreg.services.audit.recorder import Audit
from modelreg.shared.audit import Actor, AuditAction, AuditOutcome, AuditQuery, current_actor
from modelreg.shared.contracts import DeploymentStatus, ModelFormat, ModelKey
from modelreg.shared.documents import ModelDetails
from modelreg.shared.settings import Settings
from tests.api_fakes import FakeArchiveStorage, FakeAuditLog, FakeCommandPublisher, FakeModelStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ModelKey("ns", "m1")


@pytest.fixture
def log() -> FakeAuditLog:
    return FakeAuditLog()


@pytest.fixture
def audit(log: FakeAuditLog) -> Audit:
    return Audit(log, clock=lambda: T0)


async def test_the_entry_is_stored_before_the_write_and_settled_after(log, audit) -> None:
    token = current_actor.set(Actor(via="api", key_prefix="abc", request_id="r1"))
    try:
        async with audit.recording(AuditAction.MODEL_TAGS, ["ns"], model_id="m1") as note:
            (entry,) = log.entries.values()
            assert entry.outcome is AuditOutcome.PENDING  # written ahead
            assert (entry.key_prefix, entry.request_id, entry.via) == ("abc", "r1", "api")
            note.details["tags"] = {"k": "v"}
    finally:
        current_actor.reset(token)

    (entry,) = log.entries.values()
    assert entry.outcome is AuditOutcome.DONE and entry.settled_at == T0
    assert entry.details == {"tags": {"k": "v"}}


async def test_a_refusal_is_settled_with_its_code_and_a_crash_as_failed(log, audit) -> None:
    with pytest.raises(TransitionInProgress):
        async with audit.recording(AuditAction.MODEL_DEPLOY, ["ns"], model_id="m1"):
            raise TransitionInProgress("deleting", None)
    with pytest.raises(RuntimeError):
        async with audit.recording(AuditAction.MODEL_DEPLOY, ["ns"], model_id="m1"):
            raise RuntimeError("boom")

    outcomes = [(e.outcome, e.code) for e in log.entries.values()]
    assert outcomes == [(AuditOutcome.REFUSED, "transition_in_progress"), (AuditOutcome.FAILED, None)]


async def test_no_write_happens_when_its_entry_cannot_be_stored(log, audit) -> None:
    log.fail_append = True
    wrote = False
    with pytest.raises(ConnectionError):
        async with audit.recording(AuditAction.MODEL_DELETE, ["ns"], model_id="m1"):
            wrote = True
    assert not wrote and not log.entries


async def test_an_entry_that_cannot_be_settled_stays_pending_and_the_write_stands(log, audit) -> None:
    log.fail_settle = True
    async with audit.recording(AuditAction.MODEL_DELETE, ["ns"], model_id="m1"):
        pass
    (entry,) = log.entries.values()
    assert entry.outcome is AuditOutcome.PENDING


async def test_outside_a_request_the_actor_is_the_command_line(log, audit) -> None:
    async with audit.recording(AuditAction.KEY_CREATE, ["ns"]):
        pass
    (entry,) = log.entries.values()
    assert (entry.via, entry.key_prefix, entry.request_id) == ("cli", None, None)


async def test_the_models_service_records_its_writes(tmp_path: Path, log, audit) -> None:
    store = FakeModelStore()
    store.add(
        ModelDetails(
            model_id="m1",
            namespace_id="ns",
            name="resnet",
            version="1",
            model_archive_url="file:///a.tar.gz",
            model_format=ModelFormat.ONNX,
            model_hash="0" * 64,
            deployment_status=DeploymentStatus.NOT_DEPLOYED,
            created_at=T0,
            updated_at=T0,
        )
    )
    service = ModelService(
        store,
        FakeArchiveStorage(tmp_path),
        FakeCommandPublisher(),
        Settings(archive_root=str(tmp_path)),
        lambda: T0,
        audit=audit,
    )

    await service.tagging.patch(KEY, ModelPatch(tags={"stage": "prod"}))
    await service.requests.deploy(KEY)
    with pytest.raises(ModelNotFound):
        await service.tagging.patch(ModelKey("ns", "gone"), ModelPatch(tags={"k": "v"}))
    await service.deletion.delete(KEY)

    total, entries = await log.page(AuditQuery(namespace_id="ns"), 0, 10)
    actions = sorted((str(e.action), str(e.outcome), e.model_id) for e in entries)
    assert total == 4
    assert actions == [
        ("model.delete", "done", "m1"),
        ("model.deploy", "done", "m1"),
        ("model.tags", "done", "m1"),
        ("model.tags", "refused", "gone"),
    ]


async def test_an_exception_the_writer_names_a_refusal_is_settled_as_refused(log, audit) -> None:
    def refusal(exc: BaseException) -> str | None:
        return "invalid_command" if isinstance(exc, ValueError) else None

    with pytest.raises(ValueError):
        async with audit.recording(AuditAction.MODEL_DEPLOY, ["ns"], model_id="m1", refusal=refusal):
            raise ValueError("refused by the contract")
    with pytest.raises(RuntimeError):
        async with audit.recording(AuditAction.MODEL_DEPLOY, ["ns"], model_id="m1", refusal=refusal):
            raise RuntimeError("boom")

    outcomes = [(e.outcome, e.code) for e in log.entries.values()]
    assert outcomes == [(AuditOutcome.REFUSED, "invalid_command"), (AuditOutcome.FAILED, None)]
