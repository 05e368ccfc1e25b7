"""deploy/: the Kubernetes manifests against the Kubernetes JSON schemas (kubernetes-validate ships them, so
this runs offline), the KubeRay RayClusters against the fields KubeRay requires (no CRD schema offline), one
bridge per RayCluster reaching it by its dashboard, and docker-compose.yml without Ray Client (ray://)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((f"{path.name}:{document['kind']}/{document['metadata']['name']}", document))
    return found


DOCUMENTS = documents()
BUILT_IN = [(name, doc) for name, doc in DOCUMENTS if doc["apiVersion"] != "ray.io/v1"]
RAY_CLUSTERS = {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc["kind"] == "RayCluster"}
BRIDGES = [
    doc
    for _, doc in DOCUMENTS
    if doc["kind"] == "Deployment" and doc["metadata"]["name"].startswith("modelreg-bridge")
]


@pytest.mark.parametrize(("name", "document"), BUILT_IN, ids=[name for name, _ in BUILT_IN])
def test_built_in_kinds_match_the_kubernetes_schema(name: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def containers(pod_template: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = pod_template["spec"]["containers"]
    assert found and all(c.get("name") and c.get("image") for c in found)
    return found


@pytest.mark.parametrize("name", sorted(RAY_CLUSTERS))
def test_ray_clusters_have_what_kuberay_requires_and_a_dashboard(name: str) -> None:
    spec = RAY_CLUSTERS[name]["spec"]
    assert spec["rayVersion"] == "2.60.0"  # the Ray of requirements.lock and TESTED_RAY_VERSIONS
    head = spec["headGroupSpec"]
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())
    (ray_head,) = containers(head["template"])
    assert (
        ray_head["image"] == "modelreg-ray:latest"
    )  # deploy/Dockerfile, target ray: carries the model server
    assert {"name": "dashboard", "containerPort": 8265} in ray_head["ports"]  # what the bridge drives
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert all(c["image"] == "modelreg-ray:latest" for c in containers(group["template"]))
        # The pods' templates are plain pod specs: check them against the PodTemplateSpec schema.
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "x"},
                "template": group["template"],
            },
            KUBERNETES_VERSION,
            strict=True,
        )
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": head["template"]},
        KUBERNETES_VERSION,
        strict=True,
    )


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def test_one_bridge_per_ray_cluster_reaching_it_by_its_dashboard() -> None:
    served: dict[str, str] = {}
    for bridge in BRIDGES:
        assert bridge["spec"]["replicas"] == 1 and bridge["spec"]["strategy"] == {"type": "Recreate"}
        (container,) = containers(bridge["spec"]["template"])
        args = container["args"]
        assert args[:2] == ["bridge", "--cluster"]
        cluster = args[2]
        address = env(container)["MODELREG_RAY_ADDRESS"]
        ray_cluster = next(n for n in RAY_CLUSTERS if address == f"http://{n}-head-svc:8265")
        assert RAY_CLUSTERS[ray_cluster]["metadata"]["labels"]["modelreg.io/cluster"] == cluster
        assert cluster not in served, f"two bridges for cluster {cluster}"
        served[cluster] = ray_cluster
    assert sorted(served.values()) == sorted(RAY_CLUSTERS)


def test_a_cluster_with_token_auth_gives_its_bridge_the_same_token() -> None:
    for bridge in BRIDGES:
        (container,) = containers(bridge["spec"]["template"])
        ray_cluster = (
            env(container)["MODELREG_RAY_ADDRESS"].removeprefix("http://").removesuffix("-head-svc:8265")
        )
        (head,) = containers(RAY_CLUSTERS[ray_cluster]["spec"]["headGroupSpec"]["template"])
        if env(head).get("RAY_AUTH_MODE") == "token":
            assert env(container)["MODELREG_RAY_AUTH_TOKEN"] == env(head)["RAY_AUTH_TOKEN"]


def test_docker_compose_reaches_ray_by_its_dashboard_not_ray_client() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "ray://" not in text
    compose = yaml.safe_load(text)
    assert compose["x-modelreg-env"]["MODELREG_RAY_ADDRESS"] == "http://ray-head:8265"
    assert "--dashboard-port=8265" in compose["services"]["ray-head"]["command"]
