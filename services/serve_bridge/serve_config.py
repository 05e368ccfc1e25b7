"""PURE: the declarative Serve config the bridge PUTs to a cluster's dashboard, and reading its answers.

`PUT /api/serve/applications/` replaces every application of the cluster with the ones in the body, so each
change is a read-modify-write: the applications the cluster runs (`deployed_app_config` of `GET`), with one
of the bridge's added, replaced or removed. Applications of other owners that were deployed declaratively are
sent back unchanged; Serve leaves an application whose config did not change alone (no restart).
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.transitions import AppObservation, DeploymentObservation
from modelreg.shared.contracts import ClusterResources

# The replica's application builder: Ray imports it from the cluster's own environment (the Ray image).
IMPORT_PATH = "modelreg.services.serve_bridge.serve_app:build_application"


class DashboardAnswerError(ValueError):
    """The dashboard answered something that is not the shape the bridge was tested with."""


def application_config(
    *,
    app_name: str,
    route_prefix: str,
    deployment_name: str,
    spec: ModelSpec,
    ray_actor_options: dict[str, Any],
    revision: str = "",
) -> dict[str, Any]:
    """One model's application in the `ServeDeploySchema`: the builder, its args, the deployment's options.

    `revision` (new per deploy) makes the config differ from a failed one's, so Serve builds it again.
    """
    return {
        "name": app_name,
        "route_prefix": route_prefix,
        "import_path": IMPORT_PATH,
        "args": {"deployment_name": deployment_name, "revision": revision, "spec": msgspec.to_builtins(spec)},
        "deployments": [{"name": deployment_name, "num_replicas": 1, "ray_actor_options": ray_actor_options}],
    }


def deployed_configs(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The applications the cluster runs, as they were submitted (those deployed otherwise have none)."""
    applications = details.get("applications")
    if not isinstance(applications, dict):
        raise DashboardAnswerError("GET /api/serve/applications/ has no 'applications' object")
    configs: list[dict[str, Any]] = []
    for app in applications.values():
        config = app.get("deployed_app_config") if isinstance(app, dict) else None
        if isinstance(config, dict) and app.get("status") != "DELETING":
            configs.append(config)
    return configs


def desired_config(
    details: dict[str, Any],
    *,
    http_host: str,
    http_port: int,
    put: dict[str, Any] | None = None,
    remove: str | None = None,
) -> dict[str, Any]:
    """The PUT body: what runs now, with `put` added or replacing its namesake, and `remove` left out."""
    drop = {remove} if remove else set()
    if put is not None:
        drop.add(put["name"])
    applications = [config for config in deployed_configs(details) if config.get("name") not in drop]
    if put is not None:
        applications.append(put)
    return {"http_options": {"host": http_host, "port": http_port}, "applications": applications}


def observations(details: dict[str, Any], prefix: str) -> dict[str, AppObservation]:
    """Every application whose name starts with `prefix.`, from `GET /api/serve/applications/`."""
    applications = details.get("applications")
    if not isinstance(applications, dict):
        raise DashboardAnswerError("GET /api/serve/applications/ has no 'applications' object")
    observed: dict[str, AppObservation] = {}
    for name, app in applications.items():
        if not name.startswith(prefix + ".") or not isinstance(app, dict):
            continue
        deployments = {
            str(deployment_name): DeploymentObservation(
                status=str(deployment.get("status", "")), message=str(deployment.get("message") or "")
            )
            for deployment_name, deployment in (app.get("deployments") or {}).items()
            if isinstance(deployment, dict)
        }
        if not deployments:
            # Until Serve has built the application its deployments are not listed; the submitted config
            # names them (the deployment name says which model archive the application serves).
            deployments = {
                name: DeploymentObservation(status="UPDATING") for name in _configured_deployments(app)
            }
        observed[name] = AppObservation(
            status=str(app.get("status", "")), message=str(app.get("message") or ""), deployments=deployments
        )
    return observed


def _configured_deployments(app: dict[str, Any]) -> list[str]:
    config = app.get("deployed_app_config")
    listed = config.get("deployments") if isinstance(config, dict) else None
    if not isinstance(listed, list):
        return []
    return [str(d["name"]) for d in listed if isinstance(d, dict) and isinstance(d.get("name"), str)]


def serve_running(details: dict[str, Any]) -> bool:
    """Whether Serve's controller runs (the dashboard answers an empty `controller_info` otherwise)."""
    return bool(details.get("controller_info"))


def _pair(usage: dict[str, Any], name: str) -> tuple[float, float]:
    value = usage.get(name)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return 0.0, 0.0


def cluster_resources(status: dict[str, Any]) -> ClusterResources:
    """Free and total CPU, GPU and memory from `GET /api/cluster_status` (`usage`: name → [used, total])."""
    data = status.get("data") if isinstance(status.get("data"), dict) else {}
    cluster = data.get("clusterStatus") if isinstance(data, dict) else None
    report = cluster.get("loadMetricsReport") if isinstance(cluster, dict) else None
    usage = report.get("usage") if isinstance(report, dict) else None
    if not isinstance(usage, dict):
        raise DashboardAnswerError("GET /api/cluster_status has no loadMetricsReport usage yet")
    cpu_used, cpu_total = _pair(usage, "CPU")
    gpu_used, gpu_total = _pair(usage, "GPU")
    memory_used, memory_total = _pair(usage, "memory")
    return ClusterResources(
        cpu_total=cpu_total,
        cpu_free=max(cpu_total - cpu_used, 0.0),
        gpu_total=gpu_total,
        gpu_free=max(gpu_total - gpu_used, 0.0),
        memory_total_bytes=int(memory_total),
        memory_free_bytes=max(int(memory_total - memory_used), 0),
    )
