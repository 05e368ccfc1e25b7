"""Faults of the push side with real processes: the dispatcher SIGKILLed mid-delivery, the API restarted
under a watching client, a webhook receiver down for a while. Nothing committed may be missed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from modelreg.services.testing.processes import ServiceProcess
from modelreg.services.worker.applier import EventApplier
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import EventType
from modelreg.shared.settings import Settings
from tests.api_process import ApiProcess, http_client, running_api
from tests.conftest import eventually
from tests.factories import event, seed_model_document
from tests.sse import Watch, watch
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

EVENT_TYPES = [EventType.STARTED, EventType.READY, EventType.UNHEALTHY, EventType.READY]


@pytest.fixture
def push_settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings,
        webhook_allowed_hosts="127.0.0.1",
        webhook_initial_backoff_s=0.1,
        webhook_max_backoff_s=0.5,
        webhook_poll_interval_s=0.1,
        webhook_timeout_s=5,
    )


async def start_dispatcher(settings: Settings, log: Path) -> ServiceProcess:
    process = ServiceProcess("webhooks", settings, log).start()

    async def following() -> bool:
        assert process.alive, process.log_tail()
        return len(process.events_logged("webhook dispatcher following the change feed")) >= process.starts

    await eventually(following)
    return process


async def create_webhook(api: ApiProcess, key: str, url: str) -> dict[str, Any]:
    async with http_client(api, key) as client:
        response = await client.post("/v1/namespaces/ns_a/webhooks", json={"url": url})
        assert response.status_code == 201, response.text
        webhook: dict[str, Any] = response.json()["webhook"]
        return webhook


async def deliveries(api: ApiProcess, key: str, webhook_id: str) -> list[dict[str, Any]]:
    async with http_client(api, key) as client:
        response = await client.get(f"/v1/namespaces/ns_a/webhooks/{webhook_id}/deliveries?limit=500")
        result: list[dict[str, Any]] = response.json()["deliveries"]
        return result


def deployment_changes(payloads: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per model, the sequences of the deployment changes, in the order they arrived."""
    per_model: dict[str, list[int]] = {}
    for payload in payloads:
        change = payload["data"]["change"]
        if payload["type"] == "deployment.changed":
            per_model.setdefault(change["model_id"], []).append(change["sequence"])
    return per_model


async def test_dispatcher_sigkilled_mid_delivery_still_delivers_every_change_in_order(
    push_settings, db, make_key, tmp_path
) -> None:
    key = await make_key("ns_a")
    models = [f"m{i}" for i in range(4)]
    with Receiver() as receiver:
        receiver.delay_s = 0.2  # deliveries are in flight when the kill comes
        async with running_api(push_settings, tmp_path) as api:
            hook = await create_webhook(api, key, receiver.url)
            dispatcher = await start_dispatcher(push_settings, tmp_path / "webhooks.log")
            try:
                for model_id in models:
                    await db.custom_models.insert_one(seed_model_document("ns_a", model_id))
                for sequence, event_type in enumerate(EVENT_TYPES, 1):
                    await EventApplier(ModelStore()).apply(
                        [event(event_type, sequence, "ns_a", m) for m in models]
                    )
                await eventually(lambda: _true(len(receiver.accepted()) >= 4))
                dispatcher.kill()
                killed_after = len(receiver.accepted())
                receiver.delay_s = 0.0  # the kill has come: the rest need not be slow
                for model_id in models:  # committed while the dispatcher is down
                    await EventApplier(ModelStore()).apply([event(EventType.FAILED, 9, "ns_a", model_id)])
                dispatcher = await start_dispatcher(push_settings, tmp_path / "webhooks.log")
                expected = len(models) * (1 + len(EVENT_TYPES) + 1)

                async def all_delivered() -> bool:
                    assert len(receiver.unique()) == expected, len(receiver.unique())
                    return True

                await eventually(all_delivered, timeout_s=120)
                log = await deliveries(api, key, hook["webhook_id"])
            finally:
                dispatcher.stop()
    assert killed_after < expected
    payloads = [r.verified(hook["secret"]) for r in receiver.unique()]
    assert deployment_changes(payloads) == {m: [1, 2, 3, 4, 9] for m in models}
    assert sorted(p["type"] for p in payloads).count("model.created") == len(models)
    assert len(log) == expected and {d["state"] for d in log} == {"delivered"}


async def test_api_restarted_while_a_client_watches_resumes_with_last_event_id(
    settings, db, make_key, tmp_path
) -> None:
    key = await make_key("ns_a")
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    api = await ApiProcess(settings, tmp_path).start()
    try:
        seen: list[int] = []
        last_id = None
        try:
            async with watch(api.url, "/v1/namespaces/ns_a/models/m1/watch", key) as stream:
                assert isinstance(stream, Watch)
                await stream.next_event()
                for sequence in (1, 2):
                    await EventApplier(ModelStore()).apply([event(EventType.STARTED, sequence, "ns_a", "m1")])
                    received = await stream.next_event()
                    seen.append(received.json()["change"]["sequence"])
                    last_id = received.id
                api.kill()  # the API dies under the client
                for sequence in (3, 4, 5):  # committed while no API runs
                    await EventApplier(ModelStore()).apply([event(EventType.READY, sequence, "ns_a", "m1")])
                await stream.next_event(timeout_s=10)
        except Exception:
            pass  # the stream broke, as it does for a client when the server goes away
        await api.start()
        async with watch(
            api.url, "/v1/namespaces/ns_a/models/m1/watch", key, last_event_id=last_id
        ) as stream:
            assert isinstance(stream, Watch)
            for _ in range(3):
                seen.append((await stream.next_event()).json()["change"]["sequence"])
            await EventApplier(ModelStore()).apply([event(EventType.FAILED, 6, "ns_a", "m1")])
            seen.append((await stream.next_event()).json()["change"]["sequence"])
    finally:
        api.stop()
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_receiver_down_for_a_while_deliveries_are_retried_then_succeed(
    push_settings, db, make_key, tmp_path
) -> None:
    key = await make_key("ns_a")
    receiver = Receiver().__enter__()
    port = receiver.port
    async with running_api(push_settings, tmp_path) as api:
        hook = await create_webhook(api, key, receiver.url)
        receiver.close()  # down: connections are refused
        dispatcher = await start_dispatcher(push_settings, tmp_path / "webhooks.log")
        try:
            await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
            for sequence in (1, 2):
                await EventApplier(ModelStore()).apply([event(EventType.STARTED, sequence, "ns_a", "m1")])

            async def retried() -> list[dict[str, Any]]:
                log = await deliveries(api, key, hook["webhook_id"])
                oldest = log[-1]
                assert len(log) == 3 and oldest["attempts"] >= 3, log
                return log

            log = await eventually(retried, timeout_s=60)
            assert {d["state"] for d in log} == {"pending"}
            assert log[-1]["last_status_code"] is None and "ConnectError" in log[-1]["last_error"]
            assert all(d["attempts"] == 0 for d in log[:-1])  # in order: the later ones wait their turn
            with Receiver(port) as back:

                async def delivered() -> list[dict[str, Any]]:
                    log = await deliveries(api, key, hook["webhook_id"])
                    assert {d["state"] for d in log} == {"delivered"}, log
                    return log

                log = await eventually(delivered, timeout_s=60)
                payloads = [r.verified(hook["secret"]) for r in back.unique()]
        finally:
            dispatcher.stop()
    assert [p["type"] for p in payloads] == ["model.created", "deployment.changed", "deployment.changed"]
    assert deployment_changes(payloads) == {"m1": [1, 2]}
    assert log[-1]["attempts"] >= 4 and log[-1]["last_error"] is None


async def _true(value: bool) -> bool:
    return value
