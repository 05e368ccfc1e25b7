"""The uploads area's wiring: its service as the `uploads` dependency, and the periodic cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from modelreg.services.api.models.registration import ModelRegistration
from modelreg.services.api.models.service import now_ms
from modelreg.services.api.org_models.catalog import OrgModelCatalog
from modelreg.services.api.uploads.registrars import UploadRegistrar
from modelreg.services.api.uploads.service import UploadService
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.adapters.mongo import OrgModelStore, UploadStore
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.api")


class UploadsPlugin(InitPluginProtocol):
    def __init__(self, settings: Settings, storage: ArchiveStorage, audit: Audit = NOT_AUDITED) -> None:
        self.settings = settings
        self.storage = storage
        self.audit = audit
        if settings.upload_signing_key:
            self.signing_key = settings.upload_signing_key.encode()
        else:
            self.signing_key = secrets.token_bytes(32)
            if not storage.uses_s3:
                log.warning(
                    "MODELREG_UPLOAD_SIGNING_KEY is empty: signed upload URLs only work on this API process"
                )

    def service(self, state: State) -> UploadService:
        registrar = UploadRegistrar(
            ModelRegistration(state.model_store, self.storage, self.settings, now_ms, self.audit),
            OrgModelCatalog(OrgModelStore(), self.storage, self.settings, now_ms),
        )
        return UploadService(UploadStore(), self.storage, registrar, self.settings, self.signing_key, now_ms)

    @asynccontextmanager
    async def cleanup(self, app: Litestar) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                await asyncio.sleep(self.settings.upload_cleanup_interval_s)
                try:
                    await self.service(app.state).cleanup_expired()
                except Exception as exc:
                    log.warning("expired uploads not cleaned up", error=repr(exc)[:300])

        task = asyncio.create_task(run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.dependencies["uploads"] = Provide(self.service, sync_to_thread=False)
        app_config.lifespan.append(self.cleanup)
        return app_config
