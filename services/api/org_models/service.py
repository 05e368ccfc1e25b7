"""The shared-model area's service: the organization's catalog and each namespace's view of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from modelreg.services.api.clusters.ports import ClusterDirectory
from modelreg.services.api.models.deletion import ModelDeletion
from modelreg.services.api.models.deployment_requests import DeploymentRequests
from modelreg.services.api.models.ports import CommandSender, ModelRepository
from modelreg.services.api.models.service import now_ms
from modelreg.services.api.org_models.catalog import OrgModelCatalog
from modelreg.services.api.org_models.namespaces import NamespaceOrgModels
from modelreg.services.api.org_models.ports import OrgModelRepository, ReadableArchiveStore
from modelreg.services.audit.recorder import NOT_AUDITED, Audit
from modelreg.shared.settings import Settings


class OrgModelService:
    def __init__(
        self,
        shared: OrgModelRepository,
        models: ModelRepository,
        storage: ReadableArchiveStore,
        publisher: CommandSender,
        settings: Settings,
        clock: Callable[[], datetime] = now_ms,
        clusters: ClusterDirectory | None = None,
        audit: Audit = NOT_AUDITED,
    ) -> None:
        self.catalog = OrgModelCatalog(shared, storage, settings, clock)
        self.namespaces = NamespaceOrgModels(
            shared,
            models,
            DeploymentRequests(models, publisher, clock, clusters=clusters, audit=audit),
            ModelDeletion(models, storage, publisher, clock, audit=audit),
            clock,
        )
