"""The plugin's `--modelreg-bridge`: a consumer's test deploys a real model through the registry's own API,
the bridge runs it on Ray Serve, and the model answers at the endpoint the registry reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import RayCluster
from tests.integration.test_testing_plugin import consumer_project, run_pytest
from tests.model_archives import linear_onnx_bytes, tar_gz, write_archive

pytestmark = pytest.mark.e2e

DEPLOYS = """
import os

import httpx


def test_a_deployed_model_answers(modelreg_stack, modelreg_namespace):
    namespace = modelreg_namespace.id
    with open(os.environ["MODEL_ARCHIVE"], "rb") as archive:
        model = modelreg_stack.register_model(
            namespace, archive=archive.read(), model_format="onnx", num_cpus="0.25", memory_gb="0.25"
        )
    with modelreg_stack.client() as api:
        asked = api.post(f"/v1/namespaces/{namespace}/models/{model.model_id}/deploy")
        assert asked.status_code == 200, asked.text
    deployed = modelreg_stack.wait_for_status(namespace, model.model_id, "deployed", timeout=240)
    assert deployed["deployment_info"]["endpoint"] == model.endpoint
    answer = httpx.post(model.endpoint, json={"inputs": {"x": [[1.0, 2.0, 3.0]]}}, timeout=60)
    assert answer.json()["outputs"]["y"] == [[2.25, 5.5]]
"""


@pytest.mark.timeout(900)
def test_with_the_bridge_a_consumer_deploys_a_real_model(ray_cluster: RayCluster, tmp_path: Path) -> None:
    archive, _ = write_archive(tmp_path, "linear.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELREG_")}
    # The package's Ray cluster (one per run on this 2-CPU machine); the stack names its own Serve apps.
    env |= {
        "MODELREG_RAY_ADDRESS": ray_cluster.address,
        "MODELREG_SERVE_PORT": str(ray_cluster.serve_port),
        "MODEL_ARCHIVE": str(archive),
    }
    result = run_pytest(consumer_project(tmp_path / "consumer", DEPLOYS), "--modelreg-bridge", env=env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
