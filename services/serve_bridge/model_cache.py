"""The bridge's cache of unpacked models, kept within MODELREG_BRIDGE_CACHE_MAX_BYTES."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import structlog

from modelreg.services.serve_bridge.cache_rules import in_use, models_to_evict
from modelreg.services.serve_bridge.materialize import cached_models, detach_cached_model, empty_trash
from modelreg.services.serve_bridge.naming import parse_deployment_name
from modelreg.services.serve_bridge.session import OwnedApplications
from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.bridge")


class ModelCache:
    """Unpacked models under `root`; the ones no application runs and no deploy needs are evicted.

    `materializing` holds the sha256 of the archives of the deploys in hand. `deploys_done` counts finished
    deploys: a Serve snapshot taken before one finished may miss its application.
    """

    def __init__(self, settings: Settings) -> None:
        self.root = Path(settings.bridge_work_dir).resolve()
        self.max_bytes = settings.bridge_cache_max_bytes
        self.materializing: set[str] = set()
        self.deploys_done = 0

    @contextlib.contextmanager
    def deploying(self, model_hash: str) -> Iterator[None]:
        """While a deploy of this archive is in hand its model is never evicted."""
        self.materializing.add(model_hash)
        try:
            yield
        finally:
            self.materializing.discard(model_hash)
            self.deploys_done += 1

    async def evict_unused(self, owned: OwnedApplications, deploys_done: int) -> list[str]:
        """Free cached models no owned application runs and no deploy in hand needs, beyond the bound.

        `owned` is what Serve ran when `deploys_done` deploys were finished; if one finished since, its
        application may be missing from it, so nothing is evicted this time.
        """
        if deploys_done != self.deploys_done:
            return []
        running = {
            parsed[1] for _, app in owned.values() if (parsed := parse_deployment_name(app.deployment_name))
        }
        evicted = []
        try:
            cached = await asyncio.to_thread(cached_models, self.root)
            for model in models_to_evict(cached, running | self.materializing, self.max_bytes):
                # Checked again: a deploy may have started while the cache was listed.
                if not in_use(model, self.materializing) and detach_cached_model(self.root, model):
                    evicted.append(model)
            await asyncio.to_thread(empty_trash, self.root)
        except OSError as exc:
            log.warning("the model cache could not be trimmed", error=str(exc))
        if evicted:
            log.info("evicted unused models from the cache", model_hashes=evicted)
        return evicted
