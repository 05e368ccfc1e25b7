"""The bridge's answer to a resync command, driven with a fake Ray Serve and a recording publisher."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from modelreg.services.serve_bridge.bridge import Bridge
from modelreg.services.serve_bridge.naming import app_name, deployment_name
from modelreg.services.serve_bridge.transitions import AppObservation, Reported, later_command_wins
from modelreg.shared.contracts import CommandType, DeploymentCommand, EventType, ModelKey, encode
from modelreg.shared.settings import Settings
from tests.fakes import FakeServe, InMemoryModels, RecordingPublisher, app, make_bridge

KEY = ModelKey("ns", "frozen")
SETTINGS = Settings(ray_address="127.0.0.1:6379", serve_port=8001)
APP = app_name(SETTINGS.serve_app_prefix, KEY)
DEPLOYMENT = deployment_name("onnx", "ab" * 32)


def running(status: str = "RUNNING", message: str = "") -> AppObservation:
    return app(DEPLOYMENT, status, message)


@pytest.fixture
async def bridge() -> AsyncIterator[tuple[Bridge, FakeServe, RecordingPublisher]]:
    serve = FakeServe()
    service, producer, calls = make_bridge(SETTINGS, serve, InMemoryModels())
    service.reporter.publisher.cluster_url = serve.cluster_url
    yield service, serve, producer
    calls.shutdown()


def command(command_type: CommandType, key: ModelKey = KEY) -> DeploymentCommand:
    return DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        requested_at=datetime.now(UTC),
    )


async def test_resync_re_announces_a_running_application(bridge) -> None:
    service, serve, producer = bridge
    serve.apps[APP] = running()
    # What the bridge reported before does not matter: a resync publishes anyway.
    service.reporter.reported[KEY] = Reported(EventType.READY, True, DEPLOYMENT)

    assert await service.commands.handle(command(CommandType.RESYNC)) == "resynced"

    (ready,) = producer.events()
    assert ready.event_type is EventType.READY and ready.key == KEY
    assert ready.endpoint == f"http://127.0.0.1:8001/{KEY.namespace_id}/{KEY.model_id}"
    assert ready.ray_deployment_name == APP and ready.base_image == SETTINGS.base_image_onnx
    assert ready.ray_cluster_url == "127.0.0.1:6379"
    assert producer.sent[0][0] == SETTINGS.events_topic
    assert service.reporter.reported[KEY] == Reported(EventType.READY, True, DEPLOYMENT)
    assert serve.deleted == []  # nothing changed on Serve


async def test_resync_reports_the_current_status_with_a_printable_message(bridge) -> None:
    service, serve, producer = bridge
    serve.apps[APP] = running("DEPLOYING", message="waiting for replicas\r\n\x1b]0;title\x07 to start")

    assert await service.commands.handle(command(CommandType.RESYNC)) == "resynced"

    (started,) = producer.events()
    assert started.event_type is EventType.STARTED
    assert started.message is not None and "\x1b" not in started.message and "\r" not in started.message


async def test_resync_without_an_application_says_deleted(bridge) -> None:
    service, _, producer = bridge
    assert await service.commands.handle(command(CommandType.RESYNC)) == "resynced_absent"
    (deleted,) = producer.events()
    assert deleted.event_type is EventType.DELETED and deleted.key == KEY
    assert service.reporter.reported[KEY] == Reported(EventType.DELETED, False)


class OneBatchConsumer:
    """Hands the bridge one batch of command records, then stops it."""

    def __init__(self, commands: list[DeploymentCommand], stop: asyncio.Event) -> None:
        self.records = [
            SimpleNamespace(key=c.key.kafka_key(), value=encode(c), partition=0, offset=i)
            for i, c in enumerate(commands)
        ]
        self.stop = stop
        self.committed: list[dict] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        if self.records:
            batch, self.records = {("commands", 0): self.records}, []
            return batch
        self.stop.set()
        return {}

    async def commit(self, offsets: dict) -> None:
        self.committed.append(offsets)


@pytest.mark.parametrize(
    "order", [(CommandType.UNDEPLOY, CommandType.RESYNC), (CommandType.RESYNC, CommandType.UNDEPLOY)]
)
async def test_a_resync_never_replaces_an_undeploy_in_the_same_batch(bridge, order) -> None:
    service, serve, producer = bridge
    serve.apps[APP] = running()
    consumer = OneBatchConsumer([command(t) for t in order], service.commands.retry.stop)

    await service.commands.run(consumer)

    assert serve.deleted == [APP]
    assert [e.event_type for e in producer.events()] == [EventType.DELETING]
    assert consumer.committed == [{("commands", 0): 2}]


def test_later_command_wins_except_a_resync_over_a_state_change() -> None:
    deploy, undeploy, resync = CommandType.DEPLOY, CommandType.UNDEPLOY, CommandType.RESYNC
    assert later_command_wins(deploy, undeploy) and later_command_wins(undeploy, deploy)
    assert later_command_wins(resync, deploy) and later_command_wins(resync, resync)
    assert not later_command_wins(deploy, resync) and not later_command_wins(undeploy, resync)
