"""Prometheus metrics of the API (/metrics) and of the worker process (its own HTTP port)."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from modelreg.services.api.app import create_app
from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.contracts import encode
from modelreg.shared.settings import Settings
from tests.conftest import eventually
from tests.factories import event, seed_model_document

DETAILS_ROUTE = "/v1/namespaces/{namespace_id}/models/{model_id}"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text_samples: dict, name: str, **labels: str) -> float:
    return text_samples.get((name, frozenset(labels.items())), 0.0)


async def test_api_counts_requests_and_latency_by_route_template_and_status(settings, db, make_key) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_m", "model_m"))
    key = await make_key("ns_m")
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        before = samples((await client.get("/metrics")).text)
        for _ in range(3):
            assert (await client.get("/v1/namespaces/ns_m/models/model_m")).status_code == 200
        for missing in ("a", "b"):
            assert (await client.get(f"/v1/namespaces/ns_m/models/{missing}")).status_code == 404
        response = await client.get("/metrics")
        schema = (await client.get("/schema/openapi.json")).json()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    route = dict(method="GET", path=DETAILS_ROUTE, app_name="modelreg-api")

    def delta(name: str, status: str) -> float:
        return value(after, name, **route, status_code=status) - value(
            before, name, **route, status_code=status
        )

    # One series per route template: the two different missing ids share it.
    assert delta("modelreg_api_requests_total", "200") == 3
    assert delta("modelreg_api_requests_total", "404") == 2
    assert delta("modelreg_api_request_duration_seconds_count", "200") == 3
    assert value(after, "modelreg_api_request_duration_seconds_sum", **route, status_code="200") > 0
    assert not any("/metrics" in dict(labels).get("path", "") for _, labels in after)
    assert "/metrics" not in schema["paths"]


async def test_worker_serves_its_counters_on_the_configured_port(
    topics: Settings, db, producer, tmp_path: Path
):
    port = free_port()
    settings = msgspec.structs.replace(topics, worker_metrics_port=port)
    await db.custom_models.insert_one(seed_model_document(model_id="m_metrics"))
    ready = event("deployment.ready", 2, model_id="m_metrics")
    records = [
        encode(event("deployment.started", 1, model_id="m_metrics")),
        encode(ready),
        encode(ready),  # a duplicate: ignored as stale
        b"{not json",  # dead-lettered as undecodable
    ]
    worker = ServiceProcess("worker", settings, tmp_path / "worker.log").start()
    try:
        for value_bytes in records:
            await producer.send_and_wait(settings.events_topic, key=b"ns_test/m_metrics", value=value_bytes)

        async def scrape() -> dict:
            try:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://{settings.api_host}:{port}/metrics", timeout=5)).text
            except httpx.TransportError as exc:  # not listening yet
                raise AssertionError(f"metrics port {port} not answering: {exc!r}") from exc
            got = samples(text)
            # Every record accounted for before judging: consumed is counted before the batch is applied.
            assert value(got, "modelreg_worker_events_consumed_total") == len(records), text[-2000:]
            settled = (
                value(got, "modelreg_worker_events_applied_total")
                + value(got, "modelreg_worker_events_ignored_stale_total")
                + value(got, "modelreg_worker_events_dead_lettered_total", reason="undecodable")
            )
            assert settled == len(records), text[-2000:]
            return got

        got = await eventually(scrape, timeout_s=60)
    finally:
        worker.stop()

    assert value(got, "modelreg_worker_events_applied_total") == 2
    assert value(got, "modelreg_worker_events_ignored_stale_total") == 1
    assert value(got, "modelreg_worker_events_dead_lettered_total", reason="undecodable") == 1
    assert value(got, "modelreg_worker_batch_size_sum") == len(records)
    assert value(got, "modelreg_worker_apply_seconds_count") >= 1
    lag = {
        (dict(labels)["topic"], dict(labels)["partition"]): v
        for (name, labels), v in got.items()
        if name == "modelreg_worker_consumer_lag"
    }
    assert lag and set(lag.values()) == {0.0}, lag  # caught up on every partition it consumed
    assert {topic for topic, _ in lag} == {settings.events_topic}
