"""The bridge's logic on in-memory fakes: deploy, undeploy, poll, reconcile and recovery, in milliseconds.

The same paths run against real Ray Serve in tests/e2e; here every branch is driven directly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelreg.services.serve_bridge.bridge import Bridge
from modelreg.services.serve_bridge.naming import app_name, deployment_name
from modelreg.services.serve_bridge.transitions import Reported
from modelreg.services.serve_bridge.watcher import NO_APPLICATION
from modelreg.shared.contracts import CommandType, DeploymentCommand, EventType, ModelFormat, ModelKey
from modelreg.shared.documents import ModelDetails, ResourceRequirementsFields
from modelreg.shared.settings import Settings
from tests.fakes import FakeServe, InMemoryModels, RecordingPublisher, app, make_bridge
from tests.model_archives import tar_gz, write_archive

KEY = ModelKey("ns", "m1")


@dataclass
class Rig:
    bridge: Bridge
    serve: FakeServe
    models: InMemoryModels
    sent: RecordingPublisher
    settings: Settings

    @property
    def app(self) -> str:
        return app_name(self.settings.serve_app_prefix, KEY)

    def event_types(self) -> list[EventType]:
        return [e.event_type for e in self.sent.events()]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = Settings(
        archive_root=str(tmp_path / "archives"),
        bridge_work_dir=str(tmp_path / "bridge"),
        bridge_poll_interval_s=0.01,
        worker_retry_max_backoff_s=0.2,
    )
    serve, models = FakeServe(), InMemoryModels()
    bridge, sent, calls = make_bridge(settings, serve, models)
    yield Rig(bridge, serve, models, sent, settings)
    calls.shutdown()


def register(rig: Rig, content: bytes = b"an onnx graph", *, model_hash: str | None = None) -> str:
    path, digest = write_archive(
        Path(rig.settings.archive_root), "m1.tar.gz", tar_gz({"model.onnx": content})
    )
    rig.models.add(
        ModelDetails(
            namespace_id=KEY.namespace_id,
            model_id=KEY.model_id,
            name="m1",
            version="1",
            model_archive_url=path.as_uri(),
            model_format=ModelFormat.ONNX,
            model_hash=model_hash or digest,
            resource_requirements=ResourceRequirementsFields(num_cpus=0.5, num_gpus=0, memory=1024),
        )
    )
    return digest


def command(command_type: CommandType) -> DeploymentCommand:
    return DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        namespace_id=KEY.namespace_id,
        model_id=KEY.model_id,
        requested_at=datetime.now(UTC),
    )


# --- deploy ---------------------------------------------------------------------------------------------


async def test_deploy_publishes_started_and_hands_the_application_to_serve(rig: Rig) -> None:
    digest = register(rig)

    assert await rig.bridge.commands.handle(command(CommandType.DEPLOY)) == "deploying"

    (started,) = rig.sent.events()
    assert (
        started.event_type is EventType.STARTED
        and started.message == "fetching and checking the model archive"
    )
    (deployed,) = rig.serve.deployed
    deployment = deployment_name("onnx", digest)
    assert deployed["app_name"] == rig.app and deployed["route_prefix"] == "/ns/m1"
    assert deployed["deployment_name"] == deployment
    assert deployed["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0, "memory": 1024}
    assert deployed["spec"].model_hash == digest
    assert rig.bridge.reporter.reported[KEY] == Reported(EventType.STARTED, True, deployment)
    assert rig.bridge.reporter.busy == set() and rig.bridge.cache.materializing == set()
    assert rig.bridge.cache.deploys_done == 1


async def test_an_archive_that_does_not_match_its_hash_fails_without_touching_serve(rig: Rig) -> None:
    register(rig, model_hash="0" * 64)

    assert await rig.bridge.commands.handle(command(CommandType.DEPLOY)) == "failed"

    started, failed = rig.sent.events()
    assert started.event_type is EventType.STARTED and failed.event_type is EventType.FAILED
    assert failed.message.startswith("the archive does not match the model's model_hash")
    assert rig.serve.deployed == []
    assert rig.bridge.reporter.reported[KEY] == Reported(EventType.FAILED, False, None)


async def test_an_archive_without_the_formats_file_fails(rig: Rig) -> None:
    register(rig)
    path, digest = write_archive(Path(rig.settings.archive_root), "bad.tar.gz", tar_gz({"README": b"hi"}))
    rig.models.details[KEY] = rig.models.details[KEY].model_copy(
        update={"model_archive_url": path.as_uri(), "model_hash": digest}
    )

    assert await rig.bridge.commands.handle(command(CommandType.DEPLOY)) == "failed"

    assert rig.sent.events()[-1].message == "the archive holds no .onnx file"
    assert rig.serve.deployed == []


async def test_serve_refusing_the_application_fails_the_model(rig: Rig) -> None:
    register(rig)
    rig.serve.reject = "route prefix /ns/m1 is taken"

    assert await rig.bridge.commands.handle(command(CommandType.DEPLOY)) == "failed"

    assert rig.sent.events()[-1].message == "Ray Serve refused the application: route prefix /ns/m1 is taken"


async def test_deploying_a_running_model_re_announces_it(rig: Rig) -> None:
    digest = register(rig)
    rig.serve.apps[rig.app] = app(deployment_name("onnx", digest))

    assert await rig.bridge.commands.handle(command(CommandType.DEPLOY)) == "already_deployed"

    assert rig.event_types() == [EventType.READY] and rig.serve.deployed == []


async def test_a_deploy_for_an_unknown_model_publishes_nothing(rig: Rig) -> None:
    assert await rig.bridge.commands.handle(command(CommandType.DEPLOY)) == "unknown_model"
    assert rig.sent.sent == []


# --- undeploy -------------------------------------------------------------------------------------------


async def test_undeploy_publishes_deleting_and_asks_serve_to_delete(rig: Rig) -> None:
    deployment = deployment_name("onnx", "ab" * 32)
    rig.serve.apps[rig.app] = app(deployment)

    assert await rig.bridge.commands.handle(command(CommandType.UNDEPLOY)) == "deleting"

    assert rig.event_types() == [EventType.DELETING] and rig.serve.deleted == [rig.app]
    assert rig.bridge.reporter.reported[KEY] == Reported(EventType.DELETING, True, deployment)


async def test_undeploying_a_model_serve_does_not_run_says_deleted(rig: Rig) -> None:
    assert await rig.bridge.commands.handle(command(CommandType.UNDEPLOY)) == "already_deleted"
    assert rig.event_types() == [EventType.DELETED] and rig.serve.deleted == []


# --- the watcher ----------------------------------------------------------------------------------------


async def test_polls_publish_each_transition_once(rig: Rig) -> None:
    register(rig)
    await rig.bridge.commands.handle(command(CommandType.DEPLOY))
    watcher = rig.bridge.watcher

    await watcher.poll_once()  # still deploying: already reported as started
    rig.serve.apps[rig.app] = app(rig.serve.deployed[0]["deployment_name"], "RUNNING")
    await watcher.poll_once()
    await watcher.poll_once()
    del rig.serve.apps[rig.app]
    await watcher.poll_once()

    assert rig.event_types() == [EventType.STARTED, EventType.READY, EventType.DELETED]
    assert rig.bridge.reporter.reported[KEY] == Reported(EventType.DELETED, False)


async def test_a_model_whose_command_is_in_hand_is_left_to_the_command(rig: Rig) -> None:
    rig.serve.apps[rig.app] = app(deployment_name("onnx", "ab" * 32), "DEPLOY_FAILED", "boom")
    rig.bridge.reporter.busy.add(KEY)

    await rig.bridge.watcher.poll_once()
    await rig.bridge.watcher.reconcile()

    assert rig.sent.sent == []


async def test_reconcile_announces_every_application_and_deletes_what_serve_lost(rig: Rig) -> None:
    lost = ModelKey("ns", "lost")
    rig.serve.apps[rig.app] = app(deployment_name("onnx", "ab" * 32), "UNHEALTHY", "replica died")
    rig.serve.apps["other-registry.ns.x"] = app(deployment_name("onnx", "cd" * 32))  # not ours
    rig.models.on_serve = {KEY, lost}
    rig.bridge.reporter.reported[ModelKey("ns", "stale")] = Reported(EventType.READY, True)

    await rig.bridge.watcher.reconcile()

    events = {e.key: e for e in rig.sent.events()}
    assert set(events) == {KEY, lost}
    assert events[KEY].event_type is EventType.UNHEALTHY
    assert events[lost].event_type is EventType.DELETED and events[lost].message == NO_APPLICATION
    assert set(rig.bridge.reporter.reported) == {KEY, lost}  # what it reported before is forgotten


# --- Ray stops answering --------------------------------------------------------------------------------


async def test_a_command_survives_serve_going_away_by_reconnecting_and_reconciling(rig: Rig) -> None:
    rig.serve.apps[rig.app] = app(deployment_name("onnx", "ab" * 32))
    rig.serve.down = True

    await rig.bridge.commands.carry_out(command(CommandType.UNDEPLOY))

    assert rig.serve.reconnects == 1 and rig.bridge.session.generation == 1
    # The reconciliation after the reconnect announced the application, then the command ran.
    assert rig.event_types() == [EventType.READY, EventType.DELETING]
    assert rig.serve.deleted == [rig.app]


async def test_the_watcher_recovers_once_when_serve_goes_away(rig: Rig) -> None:
    rig.serve.down = True
    stop = rig.bridge.watcher.retry.stop
    watcher = asyncio.create_task(rig.bridge.watcher.run())

    while rig.serve.reconnects == 0:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(watcher, 5)

    assert rig.serve.reconnects == 1 and rig.bridge.session.generation == 1


async def test_start_recovers_when_serve_fails_during_the_first_reconciliation(rig: Rig) -> None:
    original = rig.serve.applications
    failures = [True]

    def fails_once(prefix: str):
        if failures:
            failures.pop()
            rig.serve.down = True
        return original(prefix)

    rig.serve.applications = fails_once

    await rig.bridge.start()

    assert rig.serve.reconnects == 1 and rig.bridge.reporter.publisher.cluster_url == FakeServe.cluster_url


async def test_an_unexpected_error_fails_the_model_not_the_bridge(rig: Rig) -> None:
    async def broken(key: ModelKey) -> None:
        raise RuntimeError("a bug")

    rig.models.get_details = broken

    await rig.bridge.commands.carry_out(command(CommandType.DEPLOY))

    failed = rig.sent.events()[-1]
    assert failed.event_type is EventType.FAILED
    assert failed.message == "the bridge could not carry out the deploy command: RuntimeError: a bug"
    assert KEY not in rig.bridge.reporter.reported and rig.bridge.reporter.busy == set()
