"""Deploying real models on a real local Ray Serve, observed through the registry's read API.

The chain under test: command → Kafka → bridge → Ray Serve → bridge watcher → Kafka → worker → MongoDB → API.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelreg.services.admin import publish_event
from modelreg.shared.contracts import CommandType, DeploymentEvent, EventType
from tests.conftest import eventually, read_topic
from tests.e2e.conftest import E2EStack
from tests.model_archives import (
    SAFETENSORS_TENSORS,
    expected_linear,
    linear_onnx_bytes,
    safetensors_bytes,
    tar_gz,
    write_archive,
)

pytestmark = pytest.mark.e2e


async def test_models_deploy_answer_over_http_and_undeploy(stack: E2EStack) -> None:
    settings = stack.settings
    archives = stack.tmp_path / "uploads"
    onnx_archive, onnx_hash = write_archive(
        archives, "linear.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()})
    )
    st_archive, st_hash = write_archive(
        archives, "weights.tar.gz", tar_gz({"w.safetensors": safetensors_bytes()})
    )
    linear = await stack.register("linear", "onnx", onnx_archive, onnx_hash)
    weights = await stack.register("weights", "safetensors", st_archive, st_hash)
    changed_mind = await stack.register("changed-mind", "onnx", onnx_archive, onnx_hash)
    # Sent while no bridge runs: only the last command for a model counts.
    await stack.command(changed_mind, CommandType.DEPLOY)
    await stack.command(changed_mind, CommandType.UNDEPLOY)
    stack.start_bridge()

    await stack.command(linear, CommandType.DEPLOY)
    await stack.command(weights, CommandType.DEPLOY)
    deployed_linear = await stack.wait_for_status(linear, "deployed")
    deployed_weights = await stack.wait_for_status(weights, "deployed")

    assert deployed_linear["deployed"] is True
    info = deployed_linear["deployment_info"]
    assert info["endpoint"] == f"http://127.0.0.1:{settings.serve_port}/{linear.namespace_id}/linear"
    assert info["ray_deployment_name"] == f"{settings.serve_app_prefix}.{linear.namespace_id}.linear"
    assert info["ray_cluster_url"] == settings.ray_address
    assert info["base_image"] == settings.base_image_onnx
    assert info["deployed_at"] is not None
    assert deployed_weights["deployment_info"]["base_image"] == settings.base_image_safetensors
    x = [[1.0, 2.0, 3.0], [-1.0, 0.0, 4.5]]
    async with httpx.AsyncClient(timeout=30) as http:
        prediction = await http.post(info["endpoint"], json={"inputs": {"x": x}})
        manifest = await http.get(deployed_weights["deployment_info"]["endpoint"])
        described = await http.get(info["endpoint"])
    assert prediction.status_code == 200, prediction.text
    np.testing.assert_allclose(prediction.json()["outputs"]["y"], expected_linear(x), rtol=1e-6)
    assert manifest.status_code == 200, manifest.text
    assert {t["name"]: t["shape"] for t in manifest.json()["tensors"]} == {
        name: list(array.shape) for name, array in SAFETENSORS_TENSORS.items()
    }
    assert [e["event_type"] for e in await stack.history(changed_mind)] == ["deployment.deleted"]
    history = [entry["event_type"] for entry in await stack.history(linear)]
    assert history[0] == "deployment.started" and history[-1] == "deployment.ready"

    # Deploying again changes nothing on Serve: the same replica keeps serving.
    await stack.command(linear, CommandType.DEPLOY)
    await eventually(lambda: _history_longer(stack, linear, len(history)), timeout_s=60)
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(info["endpoint"])).json()["loaded_at"] == described.json()["loaded_at"]
    assert (await stack.details(linear))["deployment_status"] == "deployed"

    await stack.command(linear, CommandType.UNDEPLOY)
    await stack.command(weights, CommandType.UNDEPLOY)
    for key in (linear, weights):
        undeployed = await stack.wait_for_status(key, "not_deployed")
        assert undeployed["deployed"] is False and undeployed["deployment_info"] is None
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.post(info["endpoint"], json={"inputs": {"x": x}})).status_code == 404

    # Undeploying what is not deployed reports it deleted again, and nothing breaks.
    before = len(await stack.history(weights))
    await stack.command(weights, CommandType.UNDEPLOY)
    await eventually(lambda: _history_longer(stack, weights, before), timeout_s=60)
    assert (await stack.history(weights))[-1]["event_type"] == "deployment.deleted"
    assert (await stack.details(weights))["deployment_status"] == "not_deployed"


async def _history_longer(stack: E2EStack, key, length: int) -> bool:
    return len(await stack.history(key)) > length


async def test_bad_archives_and_missing_runtimes_fail_with_a_reason_and_disturb_nothing(
    stack: E2EStack,
) -> None:
    archives = stack.tmp_path / "uploads"
    good_archive, good_hash = write_archive(
        archives, "good.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()})
    )
    corrupt_archive, corrupt_hash = write_archive(archives, "corrupt.tar.gz", b"\x1f\x8b not really gzip")
    torch_archive, torch_hash = write_archive(archives, "torch.tar.gz", tar_gz({"model.pt": b"weights"}))
    good = await stack.register("good", "onnx", good_archive, good_hash)
    corrupt = await stack.register("corrupt", "onnx", corrupt_archive, corrupt_hash)
    mismatch = await stack.register("mismatch", "onnx", good_archive, "f" * 64)
    torch_model = await stack.register("torch", "pytorch", torch_archive, torch_hash)
    snoop = await stack.register("snoop", "onnx", Path("/etc/passwd"), "0" * 64)
    stack.start_bridge()
    await stack.command(good, CommandType.DEPLOY)
    good_before = await stack.wait_for_status(good, "deployed")

    for key in (corrupt, mismatch, torch_model, snoop):
        await stack.command(key, CommandType.DEPLOY)
    failed_corrupt = await stack.wait_for_status(corrupt, "failed")
    failed_snoop = await stack.wait_for_status(snoop, "failed")
    failed_mismatch = await stack.wait_for_status(mismatch, "failed")
    failed_torch = await stack.wait_for_status(torch_model, "failed")

    assert "not a readable .tar.gz" in failed_corrupt["deployment_message"]
    # Generic: the tenant learns neither the hash of the file behind the URL nor whether it exists.
    assert failed_snoop["deployment_message"] == "the model archive could not be fetched"
    assert failed_mismatch["deployment_message"] == "the archive does not match the model's model_hash"
    # Refused by the replica on Ray Serve: the reason is Ray's, reduced to the exception line.
    assert "needs the Python package 'torch', which is not installed" in failed_torch["deployment_message"]
    for failed in (failed_corrupt, failed_mismatch, failed_torch, failed_snoop):
        assert failed["deployed"] is False and failed["deployment_info"] is None
    # The registry data of the failed models is untouched.
    assert failed_mismatch["model_hash"] == "f" * 64
    assert failed_corrupt["model_archive_url"] == corrupt_archive.as_uri()
    # The healthy model still serves, unchanged.
    good_after = await stack.details(good)
    assert good_after["deployment_info"] == good_before["deployment_info"]
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            good_after["deployment_info"]["endpoint"], json={"inputs": {"x": [[1, 1, 1]]}}
        )
    np.testing.assert_allclose(response.json()["outputs"]["y"], expected_linear([[1, 1, 1]]), rtol=1e-6)

    # A failed application on Serve can be undeployed like any other.
    await stack.command(torch_model, CommandType.UNDEPLOY)
    await stack.wait_for_status(torch_model, "not_deployed")
    await stack.command(good, CommandType.UNDEPLOY)
    await stack.wait_for_status(good, "not_deployed")


@pytest.mark.faults
async def test_registry_converges_after_the_bridge_is_killed_mid_deploy(stack: E2EStack) -> None:
    archive, digest = write_archive(
        stack.tmp_path / "uploads", "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()})
    )
    key = await stack.register("crashy", "onnx", archive, digest)
    first = stack.start_bridge()
    await stack.command(key, CommandType.DEPLOY)
    await stack.wait_for_status(key, "pending")

    first.kill()
    assert first.process.returncode == -9
    second = stack.start_bridge()

    deployed = await stack.wait_for_status(key, "deployed")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            deployed["deployment_info"]["endpoint"], json={"inputs": {"x": [[0, 0, 1]]}}
        )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["outputs"]["y"], expected_linear([[0, 0, 1]]), rtol=1e-6)
    sequences = [entry["sequence"] for entry in await stack.history(key)]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)

    await stack.command(key, CommandType.UNDEPLOY)
    await stack.wait_for_status(key, "not_deployed")
    assert second.stop() == 0


@pytest.mark.faults
async def test_serve_restarted_under_the_bridge_is_reconnected_and_reported(stack: E2EStack) -> None:
    archive, digest = write_archive(
        stack.tmp_path / "uploads", "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()})
    )
    key = await stack.register("survivor", "onnx", archive, digest)
    bridge = stack.start_bridge()
    await stack.command(key, CommandType.DEPLOY)
    await stack.wait_for_status(key, "deployed")

    # Somebody shuts Serve down through the dashboard: every application is gone.
    async with httpx.AsyncClient(timeout=60) as http:
        shutdown = await http.delete(f"{stack.settings.ray_address}/api/serve/applications/")
    assert shutdown.status_code == 200, shutdown.text

    # Seen either by the watcher (the application vanished) or by the reconcile after reconnecting.
    gone = await stack.wait_for_status(key, "not_deployed")
    assert gone["deployed"] is False and gone["deployment_info"] is None
    # The bridge's next PUT starts Serve again: a new deploy works without restarting the bridge.
    await stack.command(key, CommandType.DEPLOY)
    deployed = await stack.wait_for_status(key, "deployed")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            deployed["deployment_info"]["endpoint"], json={"inputs": {"x": [[1, 0, 0]]}}
        )
    assert response.status_code == 200, response.text
    assert bridge.process is not None and bridge.process.poll() is None
    await stack.command(key, CommandType.UNDEPLOY)
    await stack.wait_for_status(key, "not_deployed")


async def test_a_frozen_model_is_unfrozen_by_resync_with_the_real_serve_state(stack: E2EStack) -> None:
    settings = stack.settings
    archive, archive_hash = write_archive(
        stack.tmp_path / "uploads", "linear.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()})
    )
    running = await stack.register("running", "onnx", archive, archive_hash)
    never_deployed = await stack.register("never-deployed", "onnx", archive, archive_hash)
    stack.start_bridge()
    await stack.command(running, CommandType.DEPLOY)
    deployed = await stack.wait_for_status(running, "deployed")

    # The event that froze models before: now dead-lettered, and the model stays as it is.
    await publish_event(settings, freezing_event(running))
    (dead,) = await read_topic(settings, settings.dlq_topic, expected=1)
    assert dict(dead.headers)["dlq.reason"] == b"from_the_future"
    assert (await stack.details(running))["deployment_status"] == "deployed"

    # A model frozen by such an event applied before the rule existed: deleting, stale to every event.
    for key in (running, never_deployed):
        await stack.db.custom_models.update_one(
            {"namespace_id": key.namespace_id, "model_id": key.model_id},
            {"$set": {"last_event_sequence": 2**63 - 1, "deployed": True, "deployment_status": "deleting"}},
        )
    assert (await stack.api.post(deploy_path(running))).status_code == 409

    for key in (running, never_deployed):
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "modelreg.services.cli", "models", "resync"]
            + ["--namespace", key.namespace_id, "--model-id", key.model_id],
            env={**os.environ, **settings.as_env()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr

    back = await stack.wait_for_status(running, "deployed")
    assert back["deployed"] is True
    assert back["deployment_info"]["endpoint"] == deployed["deployment_info"]["endpoint"]
    gone = await stack.wait_for_status(never_deployed, "not_deployed")
    assert gone["deployed"] is False and gone["deployment_info"] is None
    assert (await stack.api.post(deploy_path(running))).status_code == 200  # already deployed: unchanged


def deploy_path(key) -> str:
    return f"/v1/namespaces/{key.namespace_id}/models/{key.model_id}/deploy"


def freezing_event(key) -> DeploymentEvent:
    return DeploymentEvent(
        event_id=uuid.uuid4(),
        event_type=EventType.DELETING,
        namespace_id=key.namespace_id,
        model_id=key.model_id,
        sequence=2**63 - 1,
        occurred_at=datetime.now(UTC),
    )
