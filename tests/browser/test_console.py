"""The web console in a real browser (Debian's chromium through Playwright) against the real API and worker.

Deployment events are published by the test, as the Ray Serve bridge would publish them; the console is never
reloaded while they arrive. Screenshots go to artifacts/browser/ (MODELREG_TEST_ARTIFACTS moves it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from modelreg.shared.adapters import kafka
from modelreg.shared.contracts import COMMAND_DECODER, ClusterHealthReport, ClusterResources, CommandType
from tests.browser.conftest import DEMO_ID, NS, ROOT, Stack, Watched, register_demo
from tests.conftest import eventually, read_topic
from tests.endpoints import stand_in_endpoint
from tests.factories import event, record, seed_model_document

pytestmark = pytest.mark.browser

LONG_MS = 30_000  # how long a page may take to show what the registry reports (polling or stream)


async def expect(locator: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(locator)


async def sign_in(page: Watched, stack: Stack, key: str | None = None, namespace: str = NS) -> None:
    await page.page.goto(f"{stack.url}/ui")
    await page.page.fill("#api-key", key or stack.key)
    await page.page.fill("#namespace", namespace)
    await page.page.click("#sign-in-form button[type=submit]")
    if key is None:  # the right key: wait for the namespace page before going anywhere else
        await (await expect(page.page.locator("#namespace-page"))).to_be_visible(timeout=LONG_MS)


def badge(page: Watched, model_id: str) -> Any:
    return page.page.locator(f'#models-table tr[data-model-id="{model_id}"] .badge')


async def publish(stack: Stack, *events: Any) -> None:
    producer = kafka.make_producer(stack.settings)
    await producer.start()
    try:
        for evt in events:
            key, value = record(evt)
            await producer.send_and_wait(stack.settings.events_topic, value, key=key)
    finally:
        await producer.stop()


async def test_a_wrong_key_is_refused_and_the_right_one_shows_the_namespace(
    stack: Stack, page: Watched
) -> None:
    await register_demo(stack)

    await sign_in(page, stack, key="mrk_000000000000_" + "x" * 43)
    await (await expect(page.page.locator("#sign-in-error"))).to_contain_text("Wrong API key")
    assert await page.page.evaluate("sessionStorage.getItem('modelreg.key')") is None
    await page.screenshot("sign-in-wrong-key")

    await sign_in(page, stack)
    await (await expect(badge(page, DEMO_ID))).to_have_text("not_deployed")
    assert page.page.url.endswith(f"/ui#/ns/{NS}")
    # The key is in this tab's session storage only: never in the address, never in a cookie.
    assert stack.key not in page.page.url
    assert await page.page.context.cookies() == []
    await page.screenshot("namespace")

    await page.page.click("#sign-out")
    await (await expect(page.page.locator("#sign-in-page"))).to_be_visible()
    assert await page.page.evaluate("sessionStorage.getItem('modelreg.key')") is None
    assert page.csp_violations() == [] and page.foreign_requests == []


async def test_the_filter_box_narrows_the_table(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    await stack.database.custom_models.insert_many(
        [
            seed_model_document(NS, "st-1", name="embedder", model_format="safetensors"),
            seed_model_document(NS, "st-2", name="ranker", model_format="safetensors"),
        ]
    )
    await sign_in(page, stack)
    rows = page.page.locator("#models-table tbody tr")
    await (await expect(rows)).to_have_count(3)

    await page.page.fill("#filter", "model_format = 'safetensors'")
    await page.page.click("#filter-form button[type=submit]")
    await (await expect(rows)).to_have_count(2)
    await page.page.fill("#filter", "model_format = 'safetensors' AND name = 'ranker'")
    await page.page.click("#filter-form button[type=submit]")
    await (await expect(rows)).to_have_count(1)
    await (await expect(rows.first)).to_have_attribute("data-model-id", "st-2")
    await page.screenshot("namespace-filtered")

    await page.page.click("#filter-clear")
    await (await expect(rows)).to_have_count(3)

    await page.page.fill("#filter", "owner ~ 'me'")
    await page.page.click("#filter-form button[type=submit]")
    # The registry's filter language refuses it with the position, shown in words.
    await (await expect(page.page.locator("#list-error"))).to_contain_text(
        "The list failed (422): Invalid filter at position 6"
    )
    assert page.csp_violations() == []


async def test_the_table_pages_through_the_namespace(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    await stack.database.custom_models.insert_many(
        [seed_model_document(NS, f"m-{n:02}", name=f"model-{n:02}") for n in range(25)]
    )
    await sign_in(page, stack)
    rows = page.page.locator("#models-table tbody tr")
    await (await expect(rows)).to_have_count(20)
    await (await expect(page.page.locator("#page-info"))).to_have_text("1–20 of 26")

    await page.page.click("#next-page")
    await (await expect(page.page.locator("#page-info"))).to_have_text("21–26 of 26")
    await (await expect(rows)).to_have_count(6)
    await (await expect(page.page.locator("#next-page"))).to_be_disabled()
    await page.page.click("#prev-page")
    await (await expect(page.page.locator("#page-info"))).to_have_text("1–20 of 26")


async def test_deploying_the_demo_model_turns_its_badge_deployed_and_grows_the_timeline(
    stack: Stack, browser: Any
) -> None:
    await register_demo(stack)
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    namespace_page, model_page = Watched(await context.new_page()), Watched(await context.new_page())
    list_path = f"/v1/namespaces/{NS}/models"
    list_reads: list[str] = []
    watch_reads: list[str] = []

    def reads(request: Any) -> None:
        path = request.url.split("?", 1)[0].removeprefix(stack.url)
        if request.method == "GET" and path == list_path:
            list_reads.append(path)
        elif path == f"/v1/namespaces/{NS}/watch":
            watch_reads.append(path)

    namespace_page.page.on("request", reads)
    try:
        await sign_in(namespace_page, stack)
        await (await expect(badge(namespace_page, DEMO_ID))).to_have_text("not_deployed")
        await (await expect(namespace_page.page.locator("#live"))).to_have_text("live: watching")
        loaded = len(list_reads)  # the page's own loading of the list, before it follows the stream
        await sign_in(model_page, stack)
        await model_page.page.click(f'#models-table tr[data-model-id="{DEMO_ID}"] a')
        status = model_page.page.locator("#model-status .badge")
        segments = model_page.page.locator("#timeline svg rect.segment")
        await (await expect(status)).to_have_text("not_deployed")
        await (await expect(model_page.page.locator("#timeline"))).to_contain_text("No deployment yet")

        await model_page.page.click("#deploy")
        await model_page.page.click("#confirm-yes")
        await (await expect(model_page.page.locator("#action-result"))).to_contain_text(
            "Deployment requested (200)"
        )
        await (await expect(status)).to_have_text("pending")
        await (await expect(badge(namespace_page, DEMO_ID))).to_have_text("pending", timeout=LONG_MS)

        # The console sent the deploy command the bridge takes.
        commands = [
            COMMAND_DECODER.decode(r.value)
            for r in await read_topic(stack.settings, stack.settings.commands_topic, 1)
        ]
        assert [(c.command_type, c.namespace_id, c.model_id) for c in commands] == [
            (CommandType.DEPLOY, NS, DEMO_ID)
        ]

        # The bridge's reports, as it publishes them: started, then ready.
        now = datetime.now(UTC)
        await publish(stack, event("deployment.started", 1, NS, DEMO_ID, occurred_at=now, message="fetching"))
        await (await expect(segments)).to_have_count(1, timeout=LONG_MS)
        await (await expect(segments.first)).to_have_attribute("data-status", "pending")

        await publish(stack, event("deployment.ready", 2, NS, DEMO_ID, occurred_at=datetime.now(UTC)))
        await (await expect(badge(namespace_page, DEMO_ID))).to_have_text("deployed", timeout=LONG_MS)
        await (await expect(status)).to_have_text("deployed", timeout=LONG_MS)
        await (await expect(segments)).to_have_count(2, timeout=LONG_MS)
        await (await expect(segments.last)).to_have_attribute("data-status", "deployed")

        # The namespace page never read its list again: every later status came through the real watch stream.
        assert len(list_reads) == loaded and watch_reads
        await (await expect(namespace_page.page.locator("#live"))).to_have_text("live: watching")

        await namespace_page.screenshot("namespace-deployed")
        await model_page.screenshot("model-page-deployed")
        for watched in (namespace_page, model_page):
            assert watched.csp_violations() == [] and watched.foreign_requests == []
    finally:
        await context.close()


async def test_a_failure_is_marked_on_the_timeline_with_its_message(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    await publish(
        stack,
        event("deployment.started", 1, NS, DEMO_ID, occurred_at=datetime.now(UTC)),
        event(
            "deployment.failed",
            2,
            NS,
            DEMO_ID,
            occurred_at=datetime.now(UTC),
            message="onnxruntime: bad model",
        ),
    )
    await sign_in(page, stack)
    await (await expect(badge(page, DEMO_ID))).to_have_text("failed", timeout=LONG_MS)
    await page.page.click(f'#models-table tr[data-model-id="{DEMO_ID}"] a')
    marker = page.page.locator("#timeline svg .failure-marker title")
    await (await expect(marker)).to_have_text("failed: onnxruntime: bad model")
    await (await expect(page.page.locator("#model-message"))).to_have_text("onnxruntime: bad model")


async def test_the_timeline_draws_a_segment_per_status_of_the_history(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    now = datetime.now(UTC)
    history = [
        ("deployment.started", 20, None),
        ("deployment.ready", 19, None),
        ("deployment.unhealthy", 9, "replica health check failed: 0/1 replicas running"),
        ("deployment.ready", 7, None),
    ]
    await publish(
        stack,
        *[
            event(kind, n + 1, NS, DEMO_ID, occurred_at=now - timedelta(minutes=minutes), message=message)
            for n, (kind, minutes, message) in enumerate(history)
        ],
    )
    await sign_in(page, stack)
    await (await expect(badge(page, DEMO_ID))).to_have_text("deployed", timeout=LONG_MS)
    await page.page.click(f'#models-table tr[data-model-id="{DEMO_ID}"] a')

    segments = page.page.locator("#timeline svg rect.segment")
    await (await expect(segments)).to_have_count(4)
    assert [await s.get_attribute("data-status") for s in await segments.all()] == [
        "pending",
        "deployed",
        "unhealthy",
        "deployed",
    ]
    # Wider for a longer stay: the first deployment lasted 10 minutes, the pending phase 1.
    widths = [float(await s.get_attribute("width") or 0) for s in await segments.all()]
    assert widths[1] > widths[0] * 5
    marker = page.page.locator("#timeline svg .failure-marker title")
    await (await expect(marker)).to_have_text("unhealthy: replica health check failed: 0/1 replicas running")
    shot = await page.screenshot("model-page-timeline")
    if os.environ.get("MODELREG_UPDATE_DOCS_SCREENSHOT"):  # the README's picture
        shutil.copy(shot, ROOT / "docs" / "console-model-page.png")


async def test_undeploying_a_model_that_is_not_deployed_is_explained(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    await sign_in(page, stack)
    await page.page.goto(f"{stack.url}/ui#/ns/{NS}/models/{DEMO_ID}")
    await page.page.click("#undeploy")
    await (await expect(page.page.locator("#confirm"))).to_be_visible()
    await page.page.click("#confirm-no")
    await (await expect(page.page.locator("#action-result"))).to_have_text("")
    await page.page.click("#undeploy")
    await page.page.click("#confirm-yes")
    await (await expect(page.page.locator("#action-result"))).to_contain_text("Nothing to undeploy (200)")


async def test_a_refused_deploy_is_explained_in_words(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    # Being undeployed: the registry refuses a deploy with 409 until the undeploy is done.
    await stack.database.custom_models.update_one(
        {"namespace_id": NS, "model_id": DEMO_ID},
        {
            "$set": {
                "deployment_status": "deleting",
                "last_event_sequence": 5,
                "observed_at": datetime.now(UTC),
            }
        },
    )
    await sign_in(page, stack)
    await page.page.goto(f"{stack.url}/ui#/ns/{NS}/models/{DEMO_ID}")
    await (await expect(page.page.locator("#model-status .badge"))).to_have_text("deleting")
    await page.page.click("#deploy")
    await page.page.click("#confirm-yes")
    result = page.page.locator("#action-result")
    await (await expect(result)).to_contain_text("Refused (409)")
    await (await expect(result)).to_contain_text("An undeploy is still running")
    await page.screenshot("deploy-refused")


async def test_swagger_ui_renders_offline_under_the_csp(stack: Stack, page: Watched) -> None:
    response = await page.page.goto(f"{stack.url}/schema/swagger")
    assert response is not None
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    await (await expect(page.page.locator(".swagger-ui .info .title"))).to_contain_text("Model Registry API")
    await (await expect(page.page.locator(".opblock").first)).to_be_visible()
    await page.screenshot("swagger-ui")
    assert page.foreign_requests == []
    assert page.csp_violations() == []


async def test_predict_from_the_form(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    schema = {"inputs": [{"name": "x", "type": "tensor(float)", "shape": [None, 3]}]}
    await stack.database.custom_models.update_one({"model_id": DEMO_ID}, {"$set": {"input_schema": schema}})
    with stand_in_endpoint("stand-in") as endpoint:
        # The bridge's reports of a deployment whose Serve endpoint is the local stand-in server.
        await publish(
            stack,
            event("deployment.started", 1, NS, DEMO_ID, occurred_at=datetime.now(UTC)),
            event(
                "deployment.ready",
                2,
                NS,
                DEMO_ID,
                occurred_at=datetime.now(UTC),
                endpoint=f"{endpoint.url}/{NS}/{DEMO_ID}",
            ),
        )
        await sign_in(page, stack)
        await page.page.goto(f"{stack.url}/ui#/ns/{NS}/models/{DEMO_ID}")
        status = page.page.locator("#model-status .badge")
        await (await expect(status)).to_have_text("deployed", timeout=LONG_MS)
        await (await expect(page.page.locator("#predict-panel"))).to_be_visible()
        field = page.page.locator('#predict-fields textarea[data-input="x"]')  # one field per declared input
        output = page.page.locator("#predict-output")

        await field.fill("[[1.0, 2.0, 3.0]]")
        await page.page.click("#predict-form button[type=submit]")
        await (await expect(output)).to_contain_text('"served_by": "stand-in"')
        assert endpoint.requests == 1

        # Inputs that do not fit the schema are refused by the registry, in words, before the endpoint.
        await field.fill("[[1.0, 2.0]]")
        await page.page.click("#predict-form button[type=submit]")
        await (await expect(output)).to_contain_text("Prediction failed (422)")
        await (await expect(output)).to_contain_text("x")
        assert endpoint.requests == 1
        await page.screenshot("predict")


async def test_roll_an_alias_back(stack: Stack, page: Watched) -> None:
    await register_demo(stack)
    second = seed_model_document(NS, "linear-onnx-2", name="demo-linear", version="2")
    await stack.database.custom_models.insert_one(second)
    headers = {"Authorization": f"Bearer {stack.key}"}
    alias_url = f"{stack.url}/v1/namespaces/{NS}/names/demo-linear/aliases/prod"
    async with httpx.AsyncClient(headers=headers) as client:
        for target in (DEMO_ID, "linear-onnx-2"):
            assert (await client.put(alias_url, json={"model_id": target})).status_code == 200
    await sign_in(page, stack)
    await page.page.goto(f"{stack.url}/ui#/ns/{NS}/models/{DEMO_ID}")
    row = page.page.locator('#aliases-table tr[data-alias="prod"]')
    await (await expect(row.locator(".alias-model"))).to_have_text("linear-onnx-2")
    await row.locator("button.rollback").click()
    await page.page.click("#confirm-yes")
    await (await expect(row.locator(".alias-model"))).to_have_text(DEMO_ID)
    await page.screenshot("alias-rolled-back")


async def test_the_clusters_page(stack: Stack, page: Watched) -> None:
    name = "browser-eu"
    added = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "modelreg.services.cli",
            "clusters",
            "add",
            name,
            "--ray-address",
            "ray-eu:6379",
        ]
        + ["--serve-url", "http://eu:8000", "--label", "region=eu"],
        env={**os.environ, **stack.settings.as_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    try:
        await kafka.ensure_topics(stack.settings, [stack.settings.cluster_health_topic])
        report = ClusterHealthReport(
            report_id=uuid.uuid4(),
            cluster=name,
            sequence=1,
            reported_at=datetime.now(UTC),
            serve_up=True,
            resources=ClusterResources(
                cpu_total=8, cpu_free=6, memory_total_bytes=2**34, memory_free_bytes=2**33
            ),
            applications=[],
        )
        producer = kafka.make_producer(stack.settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                stack.settings.cluster_health_topic, value=msgspec.json.encode(report), key=report.kafka_key()
            )
        finally:
            await producer.stop()

        async def reported() -> bool:
            stored = await stack.database.ray_clusters.find_one({"name": name})
            return stored is not None and stored.get("last_seen_at") is not None

        await eventually(reported)  # the worker stored the report
        await sign_in(page, stack)
        await page.page.click("#nav-clusters")
        await (await expect(page.page.locator("#clusters-page"))).to_be_visible()
        row = page.page.locator(f'#clusters-table tr[data-cluster="{name}"]')
        await (await expect(row.locator(".badge"))).to_have_text("healthy", timeout=LONG_MS)
        await (await expect(row)).to_contain_text("region")
        await page.screenshot("clusters")
    finally:
        # Later tests deploy without clusters (commands with no cluster).
        await stack.database.ray_clusters.delete_one({"name": name})


async def test_the_watch_stream_is_read_with_the_key_in_a_header_and_resumed(
    stack: Stack, page: Watched
) -> None:
    """The registry's watch route, played by the browser's own request interception: the console must parse
    the SSE itself, send the key as a header (EventSource cannot), and resume with Last-Event-ID."""
    await register_demo(stack)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {stack.key}"}) as client:
        model = (await client.get(f"{stack.url}/v1/namespaces/{NS}/models/{DEMO_ID}")).json()["model"]
    snapshot = json.dumps({**model, "deployment_status": "pending"})
    change = json.dumps(
        {
            "model": {**model, "deployment_status": "failed"},
            "change": {"event_type": "deployment.failed", "sequence": 7, "message": "boom", "endpoint": None},
        }
    )
    stream_requests: list[dict[str, str]] = []

    async def openapi_with_watch(route: Any) -> None:
        response = await route.fetch()
        body = await response.json()
        body["paths"]["/v1/namespaces/{namespace_id}/watch"] = {"get": {}}
        await route.fulfill(response=response, json=body)

    async def watch(route: Any) -> None:
        stream_requests.append(await route.request.all_headers() | {"url": route.request.url})
        if len(stream_requests) == 1:
            body = (
                f"id: 1\nevent: snapshot\ndata: {snapshot}\n\n"
                ": keep-alive\n\n"
                f"id: 2\nevent: change\ndata: {change}\n\n"
            )
        else:
            body = ": nothing new\n\n"
        await route.fulfill(status=200, content_type="text/event-stream", body=body)

    await page.page.route("**/schema/openapi.json", openapi_with_watch)
    await page.page.route(f"**/v1/namespaces/{NS}/watch", watch)
    await sign_in(page, stack)

    # Only the stream says "failed" (the registry still has the model not deployed).
    await (await expect(badge(page, DEMO_ID))).to_have_text("failed", timeout=LONG_MS)
    await (await expect(page.page.locator("#live"))).to_have_text("live: watching")
    first = stream_requests[0]
    assert first["authorization"] == f"Bearer {stack.key}" and stack.key not in first["url"]
    assert first["accept"] == "text/event-stream"
    # The stream ended: the console reconnects and resumes after the last id it saw.

    async def reconnected() -> bool:
        return len(stream_requests) > 1

    await eventually(reconnected)
    assert stream_requests[1]["last-event-id"] == "2"
