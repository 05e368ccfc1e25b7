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
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from modelreg.services.api.access_log import AccessLog
from modelreg.services.api.aliases.controller import AliasController
from modelreg.services.api.aliases.paths import EncodedNames
from modelreg.services.api.aliases.service import AliasService
from modelreg.services.api.audit.actor import bind_actor
from modelreg.services.api.audit.controller import AuditController, OrgAuditController
from modelreg.services.api.audit.service import AuditReads
from modelreg.services.api.auth.cache import CachingKeyStore
from modelreg.services.api.auth.controller import whoami
from modelreg.services.api.auth.guards import namespace_guard
from modelreg.services.api.auth.middleware import ApiKeyAuthenticationMiddleware
from modelreg.services.api.caching.aliases import CachedAliasIndex, InvalidatingAliasStore
from modelreg.services.api.caching.details import CachedModelLookup, InvalidatingModelRepository
from modelreg.services.api.caching.wiring import ApiCaches
from modelreg.services.api.clusters.controller import ClusterController
from modelreg.services.api.clusters.service import ClusterService
from modelreg.services.api.console.controller import console_route_handlers
from modelreg.services.api.console.security import BrowserPageHeaders
from modelreg.services.api.console.swagger import OfflineSwaggerRenderPlugin
from modelreg.services.api.errors import EXCEPTION_HANDLERS
from modelreg.services.api.health import HealthController
from modelreg.services.api.limits import BodyDeadlineMiddleware, HeadAsGet
from modelreg.services.api.models.archives import ModelArchives
from modelreg.services.api.models.controller import ModelController
from modelreg.services.api.models.ports import ModelRepository
from modelreg.services.api.models.reads import ModelReads
from modelreg.services.api.models.service import ModelService, now_ms
from modelreg.services.api.org_models.controller import ORG_MODEL_CONTROLLERS
from modelreg.services.api.org_models.service import OrgModelService
from modelreg.services.api.predict.checks import InputSchemaCheck
from modelreg.services.api.predict.controller import PredictController
from modelreg.services.api.predict.service import PredictionService
from modelreg.services.api.uploads.controller import (
    OrgUploadController,
    SignedUploadController,
    UploadController,
)
from modelreg.services.api.uploads.wiring import UploadsPlugin
from modelreg.services.api.watch.controller import WatchController
from modelreg.services.api.watch.wiring import change_feed_lifespan, provide_watch_service
from modelreg.services.api.webhooks.controller import WebhookController
from modelreg.services.api.webhooks.wiring import provide_webhook_service
from modelreg.services.audit.recorder import Audit
from modelreg.services.keys.service import KeyService
from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.inference import EndpointClient
from modelreg.shared.adapters.kafka import CommandPublisher
from modelreg.shared.adapters.mongo import (
    AliasStore,
    ApiKeyStore,
    AuditStore,
    ClusterStore,
    ModelStore,
    OrgModelStore,
)
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.settings import Settings

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
    caches = ApiCaches(settings)

    @asynccontextmanager
    async def mongo_lifespan(app: Litestar) -> AsyncIterator[None]:
        client = await asyncio.wait_for(
            mongo.connect_when_available(settings, stop=asyncio.Event()), timeout=STARTUP_TIMEOUT_S
        )
        app.state.mongo_client = client
        # Every write of this process goes through this store, so it invalidates what the caches hold of it.
        # Typed as the port, so the type check proves the wrapper still implements every method.
        model_store: ModelRepository = InvalidatingModelRepository(
            ModelStore(settings.history_limit, settings.tombstone_retention_s),
            caches.details,
            caches.records,
            caches.aliases,
        )
        app.state.model_store = model_store
        alias_store = AliasStore(settings.history_limit)
        app.state.alias_store = InvalidatingAliasStore(alias_store, caches.aliases)
        app.state.alias_reads = CachedAliasIndex(alias_store, caches.aliases)
        app.state.key_service = KeyService(
            CachingKeyStore(ApiKeyStore(), caches.keys), settings.api_key_pepper
        )
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

    def provide_settings() -> Settings:
        return settings

    @asynccontextmanager
    async def endpoint_client_lifespan(app: Litestar) -> AsyncIterator[None]:
        # One pooled HTTP client per process for the inference routes, closed on shutdown.
        app.state.endpoint_client = EndpointClient(settings)
        try:
            yield
        finally:
            await app.state.endpoint_client.close()

    def provide_mongo_client(state: State) -> mongo.MongoClient:
        client: mongo.MongoClient = state.mongo_client  # set by mongo_lifespan
        return client

    storage = ArchiveStorage(settings)
    audit_store = AuditStore()
    audit = Audit(audit_store)

    cluster_store = ClusterStore()

    def provide_model_service(state: State) -> ModelService:
        return ModelService(
            state.model_store,
            storage,
            state.command_publisher,
            settings,
            details_cache=caches.details,
            clusters=cluster_store,
            aliases=state.alias_store,
            audit=audit,
            alias_reads=state.alias_reads,
        )

    def provide_cluster_service() -> ClusterService:
        return ClusterService(cluster_store, settings.cluster_unreachable_after_s)

    def provide_alias_service(state: State) -> AliasService:
        return AliasService(
            state.alias_store,
            state.model_store,
            ModelReads(state.model_store, aliases=state.alias_store),
            now_ms,
            details_cache=caches.details,
            audit=audit,
        )

    def provide_prediction_service(state: State) -> PredictionService:
        return PredictionService(
            CachedModelLookup(state.model_store, caches.records),
            state.alias_reads,
            state.endpoint_client,
            check=InputSchemaCheck(),
        )

    def provide_model_archives(state: State) -> ModelArchives:
        return ModelArchives(state.model_store, storage)

    def provide_org_model_service(state: State) -> OrgModelService:
        return OrgModelService(
            OrgModelStore(),
            state.model_store,
            storage,
            state.command_publisher,
            settings,
            clusters=cluster_store,
            audit=audit,
        )

    v1 = Router(
        path="/v1",
        route_handlers=[
            whoami,
            ModelController,
            ClusterController,
            UploadController,
            OrgUploadController,
            *ORG_MODEL_CONTROLLERS,
            PredictController,
            AliasController,
            AuditController,
            OrgAuditController,
            WatchController,
            WebhookController,
        ],
        middleware=[DefineMiddleware(ApiKeyAuthenticationMiddleware)],
        guards=[namespace_guard],
        before_request=bind_actor,
        security=[{SECURITY_SCHEME: []}],
    )
    app = Litestar(
        route_handlers=[
            v1,
            SignedUploadController,
            HealthController,
            MetricsController,
            *console_route_handlers(),
        ],
        middleware=[
            PROMETHEUS.middleware,
            BodyDeadlineMiddleware(settings.api_body_grace_s, settings.api_body_min_rate_bytes_s),
            BrowserPageHeaders,
        ],
        lifespan=[
            mongo_lifespan,
            kafka_lifespan,
            endpoint_client_lifespan,
            change_feed_lifespan(settings),
            caches.follow_changes,
        ],
        plugins=[UploadsPlugin(settings, storage, audit)],
        dependencies={
            "settings": Provide(provide_settings, use_cache=True, sync_to_thread=False),
            "mongo_client": Provide(provide_mongo_client, sync_to_thread=False),
            "models": Provide(provide_model_service, sync_to_thread=False),
            "org_models": Provide(provide_org_model_service, sync_to_thread=False),
            "clusters": Provide(provide_cluster_service, sync_to_thread=False),
            "alias_service": Provide(provide_alias_service, sync_to_thread=False),
            "predictions": Provide(provide_prediction_service, sync_to_thread=False),
            "audit_reads": Provide(lambda: AuditReads(audit_store), sync_to_thread=False),
            "archives": Provide(provide_model_archives, sync_to_thread=False),
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
            render_plugins=[OfflineSwaggerRenderPlugin()],  # assets served locally, no CDN
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
    # The access log is outermost, so requests that match no route are logged too; EncodedNames keeps a
    # model name holding "/" one segment of the alias routes' path.
    app.asgi_handler = AccessLog(HeadAsGet(EncodedNames(app.asgi_handler)))
    return app
