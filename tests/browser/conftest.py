"""Browser tests: Debian's `chromium` driven by Playwright (`executable_path`; its own browser download
is never used). The API and the worker run as real processes on the test MongoDB and Kafka; the tests publish
the bridge's events themselves, as tests/integration do, so no Ray is needed.

Without chromium (`.ci/install-chromium` installs it with apt) or the `playwright` package, every test here
skips with a reason saying so, and the rest of the suite runs.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelreg.services.devstack.demo import write_demo_archive
from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.settings import Settings
from tests.conftest import insert_api_key, make_settings
from tests.factories import seed_model_document

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("MODELREG_TEST_ARTIFACTS", ROOT / "artifacts")) / "browser"
NS = "demo"
DEMO_ID = "linear-onnx"


def chromium_executable() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def skip_loudly(reason: str) -> None:
    message = f"BROWSER TESTS SKIPPED: {reason}"
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = chromium_executable()
    if path is None:
        skip_loudly("no `chromium` on PATH; run .ci/install-chromium (apt-get install chromium) as root")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        skip_loudly("the `playwright` package is not installed (requirements-dev.lock)")
    assert path is not None
    return path


@dataclass
class Stack:
    settings: Settings
    key: str
    database: Any
    url: str
    processes: list[ServiceProcess] = field(default_factory=list)

    def openapi_paths(self) -> dict[str, Any]:
        paths: dict[str, Any] = httpx.get(f"{self.url}/schema/openapi.json").json()["paths"]
        return paths


@pytest.fixture(scope="module")
async def stack(chromium_path: str, infra, tmp_path_factory) -> AsyncIterator[Stack]:
    """The API and the worker as processes, an admin key, and the demo model registered (not deployed)."""
    archives = tmp_path_factory.mktemp("archives")
    settings = make_settings(infra, archive_root=str(archives), api_port=free_port())
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    client = await mongo.connect(settings)
    database = client[settings.mongodb_database]
    key = await insert_api_key(database, settings, admin=True)
    logs = tmp_path_factory.mktemp("logs")
    api = ServiceProcess("api", settings, logs / "api.log").start()
    worker = ServiceProcess("worker", settings, logs / "worker.log").start()
    try:
        await api.wait_listening(settings.api_port)
        yield Stack(settings, key, database, f"http://127.0.0.1:{settings.api_port}", [api, worker])
    finally:
        worker.stop()
        api.stop()
        await client.drop_database(settings.mongodb_database)
        await client.close()


async def register_demo(stack: Stack) -> None:
    """The demo model of `modelreg dev`, as its registration stores it."""
    archive, digest = write_demo_archive(Path(stack.settings.archive_root) / NS)
    await stack.database.custom_models.delete_many({"namespace_id": NS})
    await stack.database.custom_models.insert_one(
        seed_model_document(
            NS,
            DEMO_ID,
            name="demo-linear",
            version="1",
            model_archive_url=archive.as_uri(),
            model_hash=digest,
            task_type="regression",
            input_schema=None,
        )
    )


@pytest.fixture(scope="module")
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


class Watched:
    """A page plus what it did that a test asserts on: requests to other hosts and CSP refusals."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.foreign_requests: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)

    def _request(self, request: Any) -> None:
        url: str = request.url
        if not url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
            self.foreign_requests.append(url)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def csp_violations(self) -> list[str]:
        return [text for text in self.console_errors if "Content Security Policy" in text]

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(await context.new_page())
    await context.close()
