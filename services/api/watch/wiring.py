"""The API process's one change feed: a lifespan that runs the hub, and the watch service's provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State

from modelreg.services.api.watch.service import WatchService
from modelreg.services.changefeed.hub import ChangeHub, running
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.adapters.mongo.change_stream import MongoChangeFeed, enable_pre_images
from modelreg.shared.adapters.mongo.snapshots import namespace_models
from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import ModelDetails
from modelreg.shared.settings import Settings


class _Reads:
    def __init__(self, store: ModelStore) -> None:
        self.store = store

    async def get_details(self, key: ModelKey) -> ModelDetails | None:
        return await self.store.get_details(key)

    async def namespace_models(self, namespace_id: str, limit: int) -> list[ModelDetails]:
        return await namespace_models(namespace_id, limit)


def change_feed_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = app.state.mongo_client  # set by the MongoDB lifespan, which runs first
        await enable_pre_images(client, settings.mongodb_database)
        hub = ChangeHub(MongoChangeFeed(client, settings.mongodb_database), settings.watch_buffer_size)
        app.state.change_hub = hub  # shared.changes.ChangeSource for every in-process consumer
        app.state.change_source = hub  # what the API's caches follow (services/api/caching/wiring.py)
        async with running(hub):
            yield

    return lifespan


def provide_watch_service(settings: Settings) -> Callable[[State], WatchService]:
    def provide(state: State) -> WatchService:
        return WatchService(state.change_hub, _Reads(state.model_store), settings.watch_heartbeat_s)

    return provide
