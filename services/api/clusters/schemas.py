"""Bodies of the clusters area."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from modelreg.shared.contracts import ClusterResources


class ClusterView(msgspec.Struct, kw_only=True):
    """A registered Ray cluster and what its bridge last reported."""

    name: Annotated[
        str, msgspec.Meta(title="Name", description="The cluster's name (`modelreg clusters add`)")
    ]
    healthy: Annotated[
        bool,
        msgspec.Meta(
            title="Healthy",
            description="Its bridge reports Serve up, and its last report is younger than "
            "MODELREG_CLUSTER_UNREACHABLE_AFTER_S",
        ),
    ]
    last_seen_at: Annotated[
        datetime | None,
        msgspec.Meta(title="Last Seen At", description="When its last health report was made"),
    ] = None
    labels: Annotated[dict[str, str], msgspec.Meta(title="Labels")] = msgspec.field(default_factory=dict)
    resources: Annotated[
        ClusterResources | None,
        msgspec.Meta(
            title="Resources", description="Totals and free CPU, GPU and memory (bytes) from its last report"
        ),
    ] = None
    models: Annotated[
        int,
        msgspec.Meta(title="Models", description="Models placed on the cluster (or being deployed there)"),
    ] = 0


class ClusterListResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    clusters: Annotated[list[ClusterView], msgspec.Meta(title="Clusters")]
