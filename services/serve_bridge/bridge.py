"""The bridge's parts put together: one Serve session, one reporter and one model cache shared by the watcher,
the command loop and the health reports (they run side by side on one event loop)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from modelreg.services.serve_bridge.commands import CommandHandler
from modelreg.services.serve_bridge.health import HealthReporter, KeyedPublisher
from modelreg.services.serve_bridge.model_cache import ModelCache
from modelreg.services.serve_bridge.ports import EventSink, ModelReader, ServeUnavailable
from modelreg.services.serve_bridge.ray_calls import RayCalls
from modelreg.services.serve_bridge.reporting import Reporter
from modelreg.services.serve_bridge.session import ServeSession
from modelreg.services.serve_bridge.watcher import StatusWatcher
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.retry import RetryPolicy
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")


@dataclass
class Bridge:
    session: ServeSession
    reporter: Reporter
    cache: ModelCache
    watcher: StatusWatcher
    commands: CommandHandler
    health: HealthReporter | None = None

    async def start(self) -> None:
        """Connect to Ray and publish the current state of everything the bridge owns."""
        await self.session.connect()
        generation = self.session.generation
        try:
            await self.watcher.reconcile()
        except ServeUnavailable as exc:
            log.warning("Ray Serve failed while reconciling", error=str(exc))
            await self.session.recover(generation)


def build_bridge(
    settings: Settings,
    calls: RayCalls,
    publisher: EventSink,
    models: ModelReader,
    storage: ArchiveStorage,
    stop: asyncio.Event,
    health_publisher: KeyedPublisher | None = None,
) -> Bridge:
    retry = RetryPolicy(stop, max_backoff_s=settings.bridge_retry_max_backoff_s)
    session = ServeSession(settings, calls, publisher, retry)
    reporter = Reporter(settings, publisher, retry)
    cache = ModelCache(settings)
    watcher = StatusWatcher(settings, session, reporter, models, cache, retry)
    session.on_reconnected = watcher.reconcile
    commands = CommandHandler(settings, session, reporter, models, storage, cache, retry)
    health = None if health_publisher is None else HealthReporter(settings, session, health_publisher, retry)
    return Bridge(session, reporter, cache, watcher, commands, health)
