"""Mixpeek's shapes on the fakes: the deploy answer (cached, Prefer: wait=N), list items, delete messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from modelreg.services.api.domain_errors import ModelNotFound
from modelreg.services.api.models.deployment_requests import DEPLOY_WAIT_POLL_S
from modelreg.services.api.models.preferences import preferred_wait
from modelreg.services.api.models.service import ModelService
from modelreg.shared.adapters.mongo import ModelFilter
from modelreg.shared.contracts import DeploymentStatus
from tests.unit.test_model_service import KEY, Registry


class FakeTime:
    """monotonic() and sleep() for the deploy wait: sleeping advances the clock and runs `on_sleep`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] = lambda count: None

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps.append(seconds)
        self.on_sleep(len(self.sleeps))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path)


@pytest.fixture
def time(registry: Registry) -> FakeTime:
    fake = FakeTime()
    registry.service.requests.sleep = fake.sleep
    registry.service.requests.monotonic = fake.monotonic
    return fake


def observe(registry: Registry, status: DeploymentStatus, message: str | None = None) -> None:
    """What the worker writes once it applies an event newer than the request."""
    stored = registry.store.models[KEY]
    assert stored.desired_at is not None
    registry.store.models[KEY] = stored.model_copy(
        update={
            "deployed": status is DeploymentStatus.DEPLOYED,
            "deployment_status": status,
            "deployment_message": message,
            "last_event_sequence": 7,
            "observed_at": stored.desired_at + timedelta(seconds=1),
        }
    )


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        (None, None),
        ("", None),
        ("wait=10", 10),
        ("WAIT = 5", 5),
        ('wait="7"', 7),
        ("respond-async, wait=3", 3),
        ("return=minimal; foo=bar, wait=4;x", 4),
        ("wait=2, wait=9", 2),  # the first one counts
        ('handling=lenient; note="a, wait=8", wait=1', 1),  # commas inside quotes do not split
        ("wait=-1", None),
        ("wait=1.5", None),
        ("wait", None),
        ("wait=", None),
        ("wait=١٢", None),  # non-ASCII digits
        ("respond-async", None),
        ("wait=" + "9" * 5000, 10**9),
    ],
)
def test_the_wait_preference_is_read_as_rfc_7240_says(header: str | None, wait: int | None) -> None:
    assert preferred_wait(header) == wait


async def test_a_deploy_answers_pending_with_its_command(registry: Registry) -> None:
    registry.model()

    answer = await registry.service.requests.deploy(KEY)

    (command,) = registry.publisher.published
    body = answer.body
    assert (body.success, body.model_id, body.namespace_id) == (True, "m1", "ns")
    assert (body.deployment_status, body.cached, body.command_id) == (
        "pending",
        False,
        str(command.command_id),
    )
    assert "pending" in body.message and answer.applied_wait is None


async def test_deploying_a_deployed_model_is_cached_and_sends_nothing(registry: Registry, time) -> None:
    registry.deployed_model()

    answer = await registry.service.requests.deploy(KEY, wait_s=30)

    body = answer.body
    assert (body.deployment_status, body.cached, body.command_id) == ("deployed", True, None)
    assert body.message == "Model already deployed" and body.success is True
    assert answer.applied_wait == 30 and time.sleeps == [] and registry.publisher.published == []


async def test_a_wait_ends_as_soon_as_the_deployment_is_observed(registry: Registry, time) -> None:
    registry.model()
    time.on_sleep = lambda count: observe(registry, DeploymentStatus.DEPLOYED) if count == 3 else None

    answer = await registry.service.requests.deploy(KEY, wait_s=30)

    body = answer.body
    assert (body.deployment_status, body.cached, body.success) == ("deployed", False, True)
    assert body.message == "Model deployed" and body.command_id is not None
    assert answer.applied_wait == 30 and time.sleeps == [DEPLOY_WAIT_POLL_S] * 3


async def test_a_failed_deployment_answers_success_false_with_its_reason(registry: Registry, time) -> None:
    registry.model()
    time.on_sleep = lambda count: observe(registry, DeploymentStatus.FAILED, "onnxruntime: bad model")

    body = (await registry.service.requests.deploy(KEY, wait_s=5)).body

    assert (body.deployment_status, body.success) == ("failed", False)
    assert body.message == "Deployment failed: onnxruntime: bad model"


async def test_the_wait_is_capped_by_the_setting_and_ends_pending(registry: Registry, time) -> None:
    registry.model()
    registry.service.requests.max_wait_s = 2

    answer = await registry.service.requests.deploy(KEY, wait_s=3600)

    assert answer.applied_wait == 2 and sum(time.sleeps) == pytest.approx(2)
    assert answer.body.deployment_status == "pending" and "still pending" in answer.body.message


async def test_a_zero_cap_never_waits_nor_claims_the_preference(registry: Registry, time) -> None:
    registry.model()
    registry.service.requests.max_wait_s = 0

    answer = await registry.service.requests.deploy(KEY, wait_s=10)

    assert answer.applied_wait is None and time.sleeps == [] and answer.body.deployment_status == "pending"


async def test_the_cap_comes_from_the_settings(registry: Registry) -> None:
    settings = msgspec.structs.replace(registry.settings, api_max_deploy_wait_s=7)
    service = ModelService(registry.store, registry.storage, registry.publisher, settings, registry.clock)
    assert service.requests.max_wait_s == 7 and registry.service.requests.max_wait_s == 60


async def test_a_model_deleted_during_the_wait_is_not_found(registry: Registry, time) -> None:
    registry.model()
    time.on_sleep = lambda count: registry.store.models.pop(KEY, None)

    with pytest.raises(ModelNotFound):
        await registry.service.requests.deploy(KEY, wait_s=5)


async def test_list_items_carry_source_and_the_endpoint_while_deployed(registry: Registry) -> None:
    registry.deployed_model()
    registry.model(KEY._replace(model_id="m2"), name="other")

    page = await registry.service.reads.list_models("ns", ModelFilter(), "name", 0, 20)

    assert page.namespace_id == "ns" and page.total == 2
    by_id = {item.model_id: item for item in page.models}
    assert by_id["m1"].endpoint == "http://serve/ns/m1" and by_id["m2"].endpoint is None
    assert {item.source for item in page.models} == {"customer"}


@pytest.mark.parametrize("deployed", [False, True])
async def test_a_delete_says_what_it_did(registry: Registry, deployed: bool) -> None:
    registry.deployed_model() if deployed else registry.model()

    first = await registry.service.deletion.delete(KEY)
    again = await registry.service.deletion.delete(KEY)

    expected = (
        "Model deleted; an undeploy command was sent for its deployment" if deployed else "Model deleted"
    )
    assert first.message == expected
    assert again.message == "Model not found; nothing was deleted" and not again.deleted
