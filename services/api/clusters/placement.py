"""Where a deploy request goes: the model's current target when it fits the wish, else `choose_cluster`."""

from __future__ import annotations

from modelreg.services.api.domain_errors import NoClusterFits
from modelreg.shared.adapters.mongo.cluster_store import candidate
from modelreg.shared.conversions import observed_from_details
from modelreg.shared.deployment_rules import DesiredState, is_observed_on_serve
from modelreg.shared.documents import ClusterRecord, ModelDetails
from modelreg.shared.placement import PlacementRequest, choose_cluster, requirements_from


def current_target(details: ModelDetails) -> str | None:
    """The cluster a model is asked on, else the one it lives on."""
    if details.desired_state is DesiredState.DEPLOYED and details.desired_cluster:
        return details.desired_cluster
    return details.cluster if is_observed_on_serve(observed_from_details(details)) else None


def satisfies(target: str, request: PlacementRequest, clusters: dict[str, ClusterRecord]) -> bool:
    if request.cluster is not None and request.cluster != target:
        return False
    if request.labels:
        record = clusters.get(target)
        return record is not None and all(record.labels.get(k) == v for k, v in request.labels.items())
    return True


def place(details: ModelDetails, request: PlacementRequest, records: list[ClusterRecord]) -> str | None:
    """The cluster the deploy command goes to; None (the default bridge) when no cluster is registered
    and the request names none. Raises NoClusterFits with each cluster's reason."""
    wished = request.cluster is not None or bool(request.labels)
    if not records and not wished:
        return None  # single-cluster installs: the default bridge, as before clusters had names
    clusters = {r.name: r for r in records}
    target = current_target(details)
    if target is not None and satisfies(target, request, clusters):
        return target  # already there (or on its way): no move
    choice = choose_cluster(
        [candidate(r) for r in records],
        request,
        requirements_from(details.resource_requirements.model_dump()),
    )
    if choice.cluster is None:
        raise NoClusterFits(choice.reasons)
    return choice.cluster
