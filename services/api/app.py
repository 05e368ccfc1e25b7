"""The Litestar application: lifespan (MongoDB), dependencies, exception handlers, OpenAPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from services.api.errors import EXCEPTION_HANDLERS
from services.api.health import HealthController
from services.api.models.controller import ModelController
from services.api.models.service import ModelService
from shared.adapters import mongo
from shared.adapters.mongo import ModelStore
from shared.retry import retry_with_backoff
from shared.settings import Settings

STARTUP_TIMEOUT_S = 60

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
        never = asyncio.Event()
        client = await asyncio.wait_for(
            retry_with_backoff(
                lambda: mongo.connect(settings),
                operation="connect_mongodb",
                stop=never,
                retry_on=(PyMongoError,),
            ),
            timeout=STARTUP_TIMEOUT_S,
        )
        app.state.mongo_client = client
        app.state.model_store = ModelStore(settings.history_limit)
        try:
            yield
        finally:
            await client.close()

    def provide_mongo_client(state: State) -> AsyncMongoClient:
        return state.mongo_client

    def provide_model_service(state: State) -> ModelService:
        return ModelService(state.model_store)

    return Litestar(
        route_handlers=[ModelController, HealthController, MetricsController],
        middleware=[PROMETHEUS.middleware],
        lifespan=[mongo_lifespan],
        dependencies={
            "mongo_client": Provide(provide_mongo_client, sync_to_thread=False),
            "models": Provide(provide_model_service, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,  # shared.logging configures structlog for the whole process
        openapi_config=OpenAPIConfig(
            title="Model Registry API",
            version="0.1.0",
            description="Registered models per namespace and their deployment state on Ray Serve.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
    )
