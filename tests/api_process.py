"""The API as a real process on a free port (for streams, restarts and tests that need their own Beanie)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.settings import Settings


class ApiProcess:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.port = settings.api_port if settings.api_port != 8000 else free_port()
        self.settings = msgspec.structs.replace(settings, api_port=self.port)
        self.process = ServiceProcess("api", self.settings, log_dir / "api.log")
        self.url = f"http://127.0.0.1:{self.port}"

    async def start(self) -> ApiProcess:
        self.process.start()
        await self.process.wait_listening(self.port)
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if (await client.get(f"{self.url}/health/ready")).status_code == 200:
                    break
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


@asynccontextmanager
async def running_api(settings: Settings, log_dir: Path) -> AsyncIterator[ApiProcess]:
    api = await ApiProcess(settings, log_dir).start()
    try:
        yield api
    finally:
        api.stop()


@asynccontextmanager
async def http_client(api: ApiProcess, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        yield client
