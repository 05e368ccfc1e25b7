"""The clusters area's service: the registered clusters as clients see them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from modelreg.services.api.clusters.ports import ClusterDirectory
from modelreg.services.api.clusters.schemas import ClusterListResponse, ClusterView
from modelreg.shared.cluster_health import is_unreachable
from modelreg.shared.contracts import ClusterResources
from modelreg.shared.conversions import aware_utc
from modelreg.shared.documents import ClusterRecord, utc_now


def cluster_view(
    record: ClusterRecord, models: int, unreachable_after_s: float, now: datetime
) -> ClusterView:
    last_seen_at = aware_utc(record.last_seen_at)
    healthy = (
        record.healthy
        and not record.unreachable
        and not is_unreachable(last_seen_at, unreachable_after_s, now)
    )
    resources = None if record.resources is None else msgspec.convert(record.resources, ClusterResources)
    return ClusterView(
        name=record.name,
        healthy=healthy,
        last_seen_at=last_seen_at,
        labels=dict(record.labels),
        resources=resources,
        models=models,
    )


class ClusterService:
    def __init__(
        self,
        directory: ClusterDirectory,
        unreachable_after_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.directory = directory
        self.unreachable_after_s = unreachable_after_s
        self.clock = clock

    async def list(self) -> ClusterListResponse:
        records = await self.directory.all()
        counts = await self.directory.models_placed()
        now = self.clock()
        return ClusterListResponse(
            clusters=[cluster_view(r, counts.get(r.name, 0), self.unreachable_after_s, now) for r in records]
        )
