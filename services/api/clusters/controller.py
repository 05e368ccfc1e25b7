"""HTTP routes of the clusters area (any valid key reads them; `modelreg clusters` manages them)."""

from __future__ import annotations

from litestar import Controller, get

from modelreg.services.api.clusters.schemas import ClusterListResponse
from modelreg.services.api.clusters.service import ClusterService
from modelreg.services.api.errors import ERROR_RESPONSES


class ClusterController(Controller):
    path = "/clusters"
    tags = ["Clusters"]

    @get(
        "/",
        summary="List Ray clusters",
        description=(
            "The registered Ray clusters models are placed on: health (from their bridges' reports), "
            "labels, free resources and how many models each serves."
        ),
        operation_id="list_clusters_v1_clusters_get",
        responses=ERROR_RESPONSES,
    )
    async def list_clusters(self, clusters: ClusterService) -> ClusterListResponse:
        return await clusters.list()
