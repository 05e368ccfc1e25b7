"""The Litestar application: lifespans (MongoDB, Kafka producer), dependencies, auth, errors, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from services.api.access_log import AccessLog
from services.api.auth.guards import namespace_guard
from services.api.auth.middleware import ApiKeyAuthenticationMiddleware
from services.api.errors import EXCEPTION_HANDLERS
from services.api.health import HealthController
from services.api.limits import BodyDeadlineMiddleware, HeadAsGet
from services.api.models.controller import ModelController
from services.api.models.service import ModelService
from services.api.org_models.controller import ORG_MODEL_CONTROLLERS
from services.api.org_models.service import OrgModelService
from services.api.uploads.controller import OrgUploadController, SignedUploadController, UploadController
from services.api.uploads.wiring import UploadsPlugin
from services.api.watch.controller import WatchController
from services.api.watch.wiring import change_feed_lifespan, provide_watch_service
from services.api.webhooks.controller import WebhookController
from services.api.webhooks.wiring import provide_webhook_service
from services.keys.service import KeyService
from shared.adapters import mongo
from shared.adapters.kafka import CommandPublisher
from shared.adapters.mongo import ApiKeyStore, ModelStore, OrgModelStore
from shared.adapters.storage import ArchiveStorage
from shared.settings import Settings

STARTUP_TIMEOUT_S = 60
SECURITY_SCHEME = "BearerApiKey"
log = structlog.get_logger("modelreg.api")

# Request count and latency by route template (not raw path: one series per route, whatever the ids) and
# status. Scrapes of /metrics itself are left out so they do not drown the API's own traffic.
PROMETHEUS = PrometheusConfig(
    app_name="modelreg-api", prefix="modelreg_api", group_path=True, exclude=["^/metrics"]
)


class MetricsController(PrometheusController):
    """Prometheus text exposition at /metrics (operational, so not part of the documented API)."""

    include_in_schema = False


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def mongo_lifespan(app: Litestar) -> AsyncIterator[None]:
        client = await asyncio.wait_for(
            mongo.connect_when_available(settings, stop=asyncio.Event()), timeout=STARTUP_TIMEOUT_S
        )
        app.state.mongo_client = client
        app.state.model_store = ModelStore(settings.history_limit)
        app.state.key_service = KeyService(ApiKeyStore(), settings.api_key_pepper)
        try:
            yield
        finally:
            await client.close()

    @asynccontextmanager
    async def kafka_lifespan(app: Litestar) -> AsyncIterator[None]:
        # Reads work without Kafka: connect in the background, and again on the first command if this fails.
        publisher = CommandPublisher(settings)
        app.state.command_publisher = publisher

        async def connect_early() -> None:
            try:
                await publisher.start()
            except Exception as exc:
                log.warning("kafka producer not started yet", error=repr(exc)[:300])

        early = asyncio.create_task(connect_early())
        try:
            yield
        finally:
            early.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await early
            await publisher.close()

    def provide_mongo_client(state: State) -> mongo.MongoClient:
        client: mongo.MongoClient = state.mongo_client  # set by mongo_lifespan
        return client

    storage = ArchiveStorage(settings)

    def provide_model_service(state: State) -> ModelService:
        return ModelService(state.model_store, storage, state.command_publisher, settings)

    def provide_org_model_service(state: State) -> OrgModelService:
        return OrgModelService(OrgModelStore(), state.model_store, storage, state.command_publisher, settings)

    v1 = Router(
        path="/v1",
        route_handlers=[
            ModelController,
            UploadController,
            OrgUploadController,
            *ORG_MODEL_CONTROLLERS,
            WatchController,
            WebhookController,
        ],
        middleware=[DefineMiddleware(ApiKeyAuthenticationMiddleware)],
        guards=[namespace_guard],
        security=[{SECURITY_SCHEME: []}],
    )
    app = Litestar(
        route_handlers=[v1, SignedUploadController, HealthController, MetricsController],
        middleware=[
            PROMETHEUS.middleware,
            BodyDeadlineMiddleware(settings.api_body_grace_s, settings.api_body_min_rate_bytes_s),
        ],
        lifespan=[mongo_lifespan, kafka_lifespan, change_feed_lifespan(settings)],
        plugins=[UploadsPlugin(settings, storage)],
        dependencies={
            "mongo_client": Provide(provide_mongo_client, sync_to_thread=False),
            "models": Provide(provide_model_service, sync_to_thread=False),
            "org_models": Provide(provide_org_model_service, sync_to_thread=False),
            "watch": Provide(provide_watch_service(settings), sync_to_thread=False),
            "webhooks": Provide(provide_webhook_service(settings), sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # shared.logging configures structlog for the whole process
        openapi_config=OpenAPIConfig(
            title="Model Registry API",
            version="0.1.0",
            description=(
                "Registered models per namespace and their deployment state on Ray Serve. Every /v1 route "
                "needs 'Authorization: Bearer <key>' (keys: `modelreg keys create`)."
            ),
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(
                security_schemes={
                    SECURITY_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key from `modelreg keys create` (or printed by `modelreg dev`)",
                    )
                }
            ),
        ),
    )
    # Before routing, as Litestar itself wraps CORS: its router would answer HEAD on a GET route with 405.
    # The access log is outermost, so requests that match no route are logged too.
    app.asgi_handler = AccessLog(HeadAsGet(app.asgi_handler))
    return app
