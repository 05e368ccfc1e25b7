"""The status watcher: polls Ray Serve and publishes every transition of the applications the bridge owns.

Ray Serve publishes no events, so the watcher compares the applications' status with what the bridge last
reported. It leaves a model alone while its command is in hand (`Reporter.busy`).
"""

from __future__ import annotations

import asyncio

import structlog
from pymongo.errors import PyMongoError

from modelreg.services.serve_bridge.model_cache import ModelCache
from modelreg.services.serve_bridge.ports import ModelReader, ServeUnavailable
from modelreg.services.serve_bridge.reporting import Reporter
from modelreg.services.serve_bridge.session import ServeSession
from modelreg.services.serve_bridge.transitions import (
    Reported,
    models_missing_from_serve,
    observed_on_this_cluster,
    transition,
)
from modelreg.shared.retry import RetryPolicy
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")
NO_APPLICATION = "Ray Serve has no application for this model"


class StatusWatcher:
    def __init__(
        self,
        settings: Settings,
        session: ServeSession,
        reporter: Reporter,
        models: ModelReader,
        cache: ModelCache,
        retry: RetryPolicy,
    ) -> None:
        self.poll_interval_s = settings.bridge_poll_interval_s
        self.cluster = settings.bridge_cluster
        self.session = session
        self.reporter = reporter
        self.models = models
        self.cache = cache
        self.retry = retry

    async def reconcile(self) -> None:
        """Publish the current state of every owned application; `deleted` where the registry is behind."""
        reported, busy = self.reporter.reported, self.reporter.busy
        deploys_done = self.cache.deploys_done
        owned = await self.session.owned_applications()
        for key in [k for k in reported if k not in busy]:
            del reported[key]
        for key, (name, app) in owned.items():
            if key not in busy:
                await self.reporter.announce(key, name, app)
        observed = await self.retry.run(
            "read_models", self.models.observed_on_serve_with_cluster, (PyMongoError,)
        )
        here = self.session.adapter.cluster_url
        # Only this cluster's models: another cluster's bridge reconciles the rest.
        live = [key for key, where in observed.items() if observed_on_this_cluster(where, self.cluster, here)]
        missing = models_missing_from_serve(live, owned, busy)
        for key in missing:
            await self.reporter.deleted(key, NO_APPLICATION)
        log.info("reconciled with Ray Serve", applications=len(owned), missing=len(missing))
        await self.cache.evict_unused(owned, deploys_done)

    async def poll_once(self) -> None:
        reported = self.reporter.reported
        deploys_done = self.cache.deploys_done
        owned = await self.session.owned_applications()
        candidates = set(owned) | {key for key, last in reported.items() if last.app_present}
        for key in candidates - self.reporter.busy:
            name, app = owned.get(key, (None, None))
            last = reported.get(key)
            event_type = transition(last, app)
            if event_type is None:
                if app is not None and last is not None and not last.app_present:
                    reported[key] = Reported(last.event_type, True, app.deployment_name)
                continue
            if app is None or name is None:
                await self.reporter.deleted(key)
            else:
                await self.reporter.announce(key, name, app)
        await self.cache.evict_unused(owned, deploys_done)

    async def run(self) -> None:
        """Poll until stopped; a Serve that stops answering gets a new session (and a reconciliation)."""
        stop = self.retry.stop
        while not stop.is_set():
            generation = self.session.generation
            try:
                await self.poll_once()
            except ServeUnavailable as exc:
                log.warning("Ray Serve is not answering", error=str(exc))
                await self.session.recover(generation)
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll_interval_s)
            except TimeoutError:
                pass
