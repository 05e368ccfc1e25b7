"""The models area's service: one object the routes depend on, made of the parts that do each job.

reads (details, listing, history), registration (uploads), deployment requests, deletion, tagging. Each part
raises domain errors (`services/api/domain_errors.py`) and talks to the outside only through `ports.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from modelreg.services.api.caching.details import DetailsCache
from modelreg.services.api.clusters.ports import ClusterDirectory
from modelreg.services.api.models.deletion import ModelDeletion
from modelreg.services.api.models.deployment_requests import DeploymentRequests
from modelreg.services.api.models.ports import AliasIndex, ArchiveStore, CommandSender, ModelRepository
from modelreg.services.api.models.reads import ModelReads
from modelreg.services.api.models.registration import ModelRegistration
from modelreg.services.api.models.tagging import ModelTagging
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.documents import utc_now
from modelreg.shared.settings import Settings


def now_ms() -> datetime:
    # MongoDB keeps milliseconds; a value compared later (compare-and-set) must survive the round trip.
    now = utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ModelService:
    def __init__(
        self,
        store: ModelRepository,
        storage: ArchiveStore,
        publisher: CommandSender,
        settings: Settings,
        clock: Callable[[], datetime] = now_ms,
        details_cache: DetailsCache | None = None,
        clusters: ClusterDirectory | None = None,
        aliases: AliasIndex | None = None,
        audit: Audit = NOT_AUDITED,
        alias_reads: AliasIndex | None = None,
    ) -> None:
        # The views' aliases may come from a cache (`alias_reads`); a delete checks the stored ones.
        self.reads = ModelReads(store, details_cache, alias_reads or aliases, audit.store)
        self.registration = ModelRegistration(store, storage, settings, clock, audit)
        self.requests = DeploymentRequests(
            store,
            publisher,
            clock,
            max_wait_s=settings.api_max_deploy_wait_s,
            clusters=clusters,
            audit=audit,
        )
        self.deletion = ModelDeletion(store, storage, publisher, clock, aliases, audit)
        self.tagging = ModelTagging(store, clock, audit)
