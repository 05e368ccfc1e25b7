"""The API's caches built from the settings, and the lifespan that feeds them from the change feed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Litestar

from modelreg.services.api.auth.cache import KeyRecordCache
from modelreg.services.api.caching.aliases import NamespaceAliasCache
from modelreg.services.api.caching.details import DetailsCache, ModelRecordCache
from modelreg.services.api.caching.feed import follow
from modelreg.shared.changes import ChangeSource
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.api")


class ApiCaches:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = KeyRecordCache(
            ttl_s=settings.api_auth_cache_ttl_s, max_entries=settings.api_auth_cache_max_entries
        )
        self.details = DetailsCache(
            ttl_s=settings.api_details_cache_ttl_s,
            feed_ttl_s=settings.api_details_cache_feed_ttl_s,
            max_entries=settings.api_details_cache_max_entries,
            max_bytes=settings.api_details_cache_max_bytes,
        )
        # The inference route's model lookups, and the aliases of a namespace (model views, inference by
        # alias): the same bounds and staleness as the details.
        self.records = ModelRecordCache(
            ttl_s=settings.api_details_cache_ttl_s,
            feed_ttl_s=settings.api_details_cache_feed_ttl_s,
            max_entries=settings.api_details_cache_max_entries,
            max_bytes=settings.api_details_cache_max_bytes,
        )
        self.aliases = NamespaceAliasCache(
            ttl_s=settings.api_details_cache_ttl_s,
            feed_ttl_s=settings.api_details_cache_feed_ttl_s,
            max_entries=settings.api_details_cache_max_entries,
            max_bytes=settings.api_details_cache_max_bytes,
        )

    @asynccontextmanager
    async def follow_changes(self, app: Litestar) -> AsyncIterator[None]:
        """Follows `app.state.change_source` (a `ChangeSource`, set by an earlier lifespan) when there is one
        and MODELREG_API_CACHE_FOLLOW_CHANGES allows; otherwise the caches live on their TTL alone."""
        source: ChangeSource | None = getattr(app.state, "change_source", None)
        if source is None or not self.settings.api_cache_follow_changes:
            log.info("api caches without the change feed: entries live their TTL")
            yield
            return
        task = asyncio.create_task(follow(source, self.keys, self.details, self.records, self.aliases))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
