"""Placement, pure: which registered Ray cluster a deployment goes to (docs/clusters.md, "Placement").

The API asks `choose_cluster` on deploy; the worker's failover check asks it for a model whose cluster was
lost. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

from modelreg.shared.contracts import ClusterResources


class ClusterCandidate(msgspec.Struct, kw_only=True, frozen=True):
    """A registered cluster as placement sees it: its labels and what its last health report said."""

    name: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    # Reports keep coming and the last one said Serve is up.
    healthy: bool = False
    resources: ClusterResources | None = None


class Requirements(msgspec.Struct, kw_only=True, frozen=True):
    """A model's `resource_requirements` (memory in bytes)."""

    num_cpus: float = 1.0
    num_gpus: int = 0
    memory: int = 4294967296


class PlacementRequest(msgspec.Struct, kw_only=True, frozen=True):
    """The deploy body's wish: one cluster by name, or any cluster carrying all these labels."""

    cluster: str | None = None
    labels: dict[str, str] | None = None


class Placement(msgspec.Struct, kw_only=True, frozen=True):
    """What a deploy request records: the cluster asked for (None: the default bridge) and whether to
    fail over (None: unchanged)."""

    cluster: str | None
    failover: bool | None = None


class PlacementChoice(msgspec.Struct, kw_only=True, frozen=True):
    """The chosen cluster, or None with each cluster's reason for not fitting."""

    cluster: str | None
    reasons: dict[str, str] = msgspec.field(default_factory=dict)


def refusal(candidate: ClusterCandidate, request: PlacementRequest, needs: Requirements) -> str | None:
    """Why `candidate` cannot take the deployment, or None when it fits."""
    if request.cluster is not None and candidate.name != request.cluster:
        return f"not the requested cluster {request.cluster}"
    if request.labels:
        missing = sorted(k for k, v in request.labels.items() if candidate.labels.get(k) != v)
        if missing:
            return "labels do not match: " + ", ".join(f"{k}={request.labels[k]}" for k in missing)
    if not candidate.healthy:
        return "unhealthy (Serve down or no recent health report)"
    free = candidate.resources
    if free is None:
        return "no health report yet"
    if needs.num_gpus > 0 and free.gpu_free < needs.num_gpus:
        return f"needs {needs.num_gpus} free GPUs, has {free.gpu_free:g}"
    if free.cpu_free < needs.num_cpus:
        return f"needs {needs.num_cpus:g} free CPUs, has {free.cpu_free:g}"
    if free.memory_free_bytes < needs.memory:
        return f"needs {needs.memory} bytes of free memory, has {free.memory_free_bytes}"
    return None


def _capacity(candidate: ClusterCandidate, needs: Requirements) -> tuple[float, ...]:
    """What is left after the deployment; GPUs first for a model that needs them."""
    free = candidate.resources or ClusterResources()
    cpu, memory = free.cpu_free - needs.num_cpus, float(free.memory_free_bytes - needs.memory)
    if needs.num_gpus > 0:
        return (free.gpu_free - needs.num_gpus, cpu, memory)
    return (cpu, memory)


def choose_cluster(
    candidates: Iterable[ClusterCandidate],
    request: PlacementRequest,
    needs: Requirements,
    *,
    exclude: Iterable[str] = (),
) -> PlacementChoice:
    """The fitting cluster with the most free capacity left (ties: the first name), else every reason.

    A named cluster that is not registered is refused with the reason `not registered`. Clusters in
    `exclude` (a lost cluster, when failing over) are refused as such.
    """
    excluded = set(exclude)
    reasons: dict[str, str] = {}
    fitting: list[ClusterCandidate] = []
    for candidate in sorted(candidates, key=lambda c: c.name):
        reason = "the cluster being failed over from" if candidate.name in excluded else None
        reason = reason or refusal(candidate, request, needs)
        if reason is None:
            fitting.append(candidate)
        elif request.cluster is None or candidate.name == request.cluster:
            reasons[candidate.name] = reason
    if request.cluster is not None and request.cluster not in {c.name for c in fitting} | set(reasons):
        reasons[request.cluster] = "not registered"
    if not fitting:
        return PlacementChoice(cluster=None, reasons=reasons)
    best = max(fitting, key=lambda c: _capacity(c, needs))  # the first of equals: sorted by name
    return PlacementChoice(cluster=best.name)


def requirements_from(fields: Mapping[str, object] | None) -> Requirements:
    """A stored `resource_requirements` (missing fields take the seed's defaults)."""
    return msgspec.convert(dict(fields or {}), Requirements, strict=False)
