"""Two real Ray clusters, each its own process tree with its own dashboard, and one bridge per cluster
connecting from outside by the dashboard URL (one of them with Ray's token auth on).

Proves: each bridge carries out only its cluster's commands and stamps its events with the cluster; models
deploy, answer and undeploy on their own cluster; replicas fetch archives themselves, from S3 (moto) and from
the registry's archive route with a read key; health reports name Serve, the applications and the resources,
and say so when a cluster's dashboard stops answering, after which the bridge re-announces the real state.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import msgspec
import numpy as np
import pytest

from modelreg.services.admin import publish_command
from modelreg.services.serve_bridge.ports import ServeUnavailable
from modelreg.services.serve_bridge.ray_dashboard import RayDashboardAdapter
from modelreg.services.testing.infra import Infra
from modelreg.shared.contracts import (
    ClusterHealthReport,
    CommandType,
    DeploymentCommand,
    DeploymentEvent,
    ModelKey,
)
from modelreg.shared.settings import Settings
from tests.conftest import eventually, insert_api_key, read_topic
from tests.e2e.conftest import TEST_RESOURCES, BridgeProcess, PairStack, RayCluster, pair_settings, pair_stack
from tests.factories import seed_model_document
from tests.model_archives import expected_linear, linear_onnx_bytes, tar_gz, write_archive

pytestmark = pytest.mark.e2e


class TwoClusters(PairStack):
    def bridge_settings(self, name: str, **overrides: Any) -> Settings:
        cluster = self.clusters[name]
        values: dict[str, Any] = dict(
            ray_address=cluster.address,
            ray_auth_token=cluster.token,
            serve_port=cluster.serve_port,
            bridge_cluster=name,
            bridge_work_dir=str(self.tmp_path / f"bridge-{name}"),
            # Replicas unpack into their own directory: they fetch the archive themselves, as on another node.
            ray_replica_work_dir=str(self.tmp_path / f"replica-{name}"),
        )
        return msgspec.structs.replace(self.settings, **{**values, **overrides})

    def start_bridge(self, settings: Settings) -> BridgeProcess:
        log = self.tmp_path / f"bridge-{settings.bridge_cluster}-{len(self.bridges)}.log"
        bridge = BridgeProcess(settings, log).start()
        self.bridges.append(bridge)
        return bridge

    async def command(self, key: ModelKey, command_type: CommandType, cluster: str) -> None:
        await publish_command(
            self.settings,
            DeploymentCommand(
                command_id=uuid.uuid4(),
                command_type=command_type,
                namespace_id=key.namespace_id,
                model_id=key.model_id,
                requested_at=datetime.now(UTC),
                cluster=cluster,
            ),
        )

    async def wait_for_status(self, key: ModelKey, status: str, timeout_s: float = 180) -> dict[str, Any]:
        async def reached() -> dict[str, Any]:
            response = await self.api.get(f"/v1/namespaces/{key.namespace_id}/models/{key.model_id}")
            model = response.json()["model"]
            assert model["deployment_status"] == status, (
                f"{key}: {model['deployment_status']} ({model['deployment_message']}), waiting for {status}"
            )
            return dict(model)

        return await eventually(reached, timeout_s=timeout_s, interval_s=0.5)


@pytest.fixture
async def two(
    infra: Infra, cluster_pair: dict[str, RayCluster], s3_server: str, tmp_path: Path
) -> AsyncIterator[TwoClusters]:
    settings = pair_settings(
        infra, tmp_path, s3_endpoint_url=s3_server, s3_bucket=f"models-{uuid.uuid4().hex[:8]}"
    )
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=settings.s3_bucket)
    async with pair_stack(TwoClusters, settings, cluster_pair, tmp_path) as stack:
        yield stack


def dashboard_pid(cluster: RayCluster) -> int:
    """The pid of the cluster's dashboard process (`dashboard.py … --port=<its port>`), read from /proc."""
    port = cluster.address.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"dashboard/dashboard.py") for a in args) and f"--port={port}".encode() in args:
            return int(entry.name)
    raise AssertionError(f"no dashboard process on port {port}")


async def ready_events(settings: Settings, key: ModelKey) -> int:
    records = await read_topic(settings, settings.events_topic, expected=1, timeout_s=5)
    events = [msgspec.json.decode(r.value, type=DeploymentEvent) for r in records]
    return sum(1 for e in events if e.key == key and e.event_type == "deployment.ready")


def eu_endpoint(model: dict[str, Any]) -> str:
    return str(model["deployment_info"]["endpoint"])


async def register(two: TwoClusters, model_id: str, archive_url: str, digest: str) -> ModelKey:
    document = seed_model_document(
        two.namespace,
        model_id,
        model_format="onnx",
        model_archive_url=archive_url,
        model_hash=digest,
        resource_requirements=TEST_RESOURCES,
    )
    await two.db.custom_models.insert_one(document)
    return ModelKey(two.namespace, model_id)


async def test_each_cluster_runs_only_its_models_fetched_from_s3_and_from_the_registry(
    two: TwoClusters,
) -> None:
    settings = two.settings
    data = tar_gz({"model.onnx": linear_onnx_bytes()})
    # eu: the archive in S3; the replica fetches it from the bucket itself.
    s3_path, digest = write_archive(two.tmp_path / "uploads", "eu.tar.gz", data)
    boto3.client("s3", endpoint_url=settings.s3_endpoint_url).upload_file(
        str(s3_path), settings.s3_bucket, f"{two.namespace}/eu-model.tar.gz"
    )
    eu_model = await register(
        two, "eu-model", f"s3://{settings.s3_bucket}/{two.namespace}/eu-model.tar.gz", digest
    )
    # us: the archive on the registry's disk; the replica fetches it from the API's archive route.
    file_path, _ = write_archive(two.tmp_path / "uploads", "us.tar.gz", data)
    us_model = await register(two, "us-model", file_path.as_uri(), digest)
    read_key = await insert_api_key(two.db, settings, two.namespace)

    # Each dashboard exchange waits at most 5 s (a third of this), so a frozen dashboard is seen soon.
    eu_bridge = two.start_bridge(two.bridge_settings("eu", bridge_ray_timeout_s=15.0))
    us_bridge = two.start_bridge(
        two.bridge_settings(
            "us", bridge_archive_registry_url=two.api_url, bridge_archive_registry_key=read_key
        )
    )
    # Commands for the other cluster (and for none) are left alone by both bridges.
    await two.command(eu_model, CommandType.DEPLOY, "eu")
    await two.command(us_model, CommandType.DEPLOY, "us")
    eu = await two.wait_for_status(eu_model, "deployed")
    us = await two.wait_for_status(us_model, "deployed")

    assert eu["deployment_info"]["ray_cluster_url"] == two.clusters["eu"].address
    assert us["deployment_info"]["ray_cluster_url"] == two.clusters["us"].address
    assert eu["deployment_info"]["endpoint"].startswith(f"http://127.0.0.1:{two.clusters['eu'].serve_port}/")
    assert us["deployment_info"]["endpoint"].startswith(f"http://127.0.0.1:{two.clusters['us'].serve_port}/")
    x = [[1.0, 2.0, 3.0]]
    async with httpx.AsyncClient(timeout=30) as http:
        for model in (eu, us):
            answer = await http.post(model["deployment_info"]["endpoint"], json={"inputs": {"x": x}})
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["outputs"]["y"], expected_linear(x), rtol=1e-6)
        # Each cluster runs exactly its own model (as its dashboard says).
        eu_apps = (await http.get(f"{two.clusters['eu'].address}/api/serve/applications/")).json()
        us_apps = (
            await http.get(
                f"{two.clusters['us'].address}/api/serve/applications/",
                headers={"Authorization": f"Bearer {two.clusters['us'].token}"},
            )
        ).json()
    prefix = settings.serve_app_prefix
    assert [n for n in eu_apps["applications"] if n.startswith(prefix)] == [
        f"{prefix}.{two.namespace}.eu-model"
    ]
    assert [n for n in us_apps["applications"] if n.startswith(prefix)] == [
        f"{prefix}.{two.namespace}.us-model"
    ]
    # The replicas fetched, checked and unpacked the archive themselves, outside the bridges' work dirs.
    for name in ("eu", "us"):
        assert (two.tmp_path / f"replica-{name}" / "models" / digest / ".complete").is_file()

    # Health reports from both clusters: Serve up, the running application, the cluster's one CPU.
    async def both_report_running() -> dict[str, ClusterHealthReport]:
        records = await read_topic(settings, settings.cluster_health_topic, expected=4, timeout_s=10)
        latest: dict[str, ClusterHealthReport] = {}
        for record in records:
            report = msgspec.json.decode(record.value, type=ClusterHealthReport)
            assert record.key == report.cluster.encode()
            latest[report.cluster] = report
        for name, model in (("eu", eu_model), ("us", us_model)):
            report = latest[name]
            assert report.serve_up is True and report.ray_address == two.clusters[name].address
            assert [(a.model_id, a.status) for a in report.applications] == [(model.model_id, "RUNNING")]
            assert report.resources.cpu_total == 1.0 and report.resources.memory_total_bytes > 0
            assert report.resources.cpu_free <= 1.0 - TEST_RESOURCES["num_cpus"]
        return latest

    await eventually(both_report_running, timeout_s=60, interval_s=1)

    # eu's dashboard stops answering (its process frozen): the bridge reports the cluster unreachable; once it
    # answers again, the bridge reconnects and re-announces the real state of its applications.
    dashboard = dashboard_pid(two.clusters["eu"])
    ready_before = await ready_events(settings, eu_model)
    os.kill(dashboard, signal.SIGSTOP)
    try:

        async def eu_reported_unreachable() -> bool:
            records = await read_topic(settings, settings.cluster_health_topic, expected=1, timeout_s=5)
            reports = [msgspec.json.decode(r.value, type=ClusterHealthReport) for r in records]
            last = [r for r in reports if r.cluster == "eu"][-1]
            assert last.serve_up is False, "eu still reported up"
            assert last.message is not None and last.message.startswith("the Ray cluster does not answer")
            return True

        await eventually(eu_reported_unreachable, timeout_s=90, interval_s=1)

        # Frozen until the bridge's watcher has seen it too (the health report alone may come first): only a
        # watcher that saw Serve stop answering starts a new session, and so re-announces.
        async def watcher_noticed() -> bool:
            assert "Ray Serve is not answering" in eu_bridge.log(), "the watcher has not noticed yet"
            return True

        await eventually(watcher_noticed, timeout_s=90, interval_s=0.5)
    finally:
        os.kill(dashboard, signal.SIGCONT)

    async def eu_reannounced() -> bool:
        assert await ready_events(settings, eu_model) > ready_before, "no new deployment.ready for eu-model"
        return True

    await eventually(eu_reannounced, timeout_s=120, interval_s=1)
    assert "reconnected to Ray" in eu_bridge.log()
    assert (await two.wait_for_status(eu_model, "deployed"))["deployment_info"]["endpoint"] == eu_endpoint(eu)

    await two.command(eu_model, CommandType.UNDEPLOY, "eu")
    await two.command(us_model, CommandType.UNDEPLOY, "us")
    await two.wait_for_status(eu_model, "not_deployed")
    await two.wait_for_status(us_model, "not_deployed")

    # Every event names the cluster it happened on.
    events = [
        msgspec.json.decode(record.value, type=DeploymentEvent)
        for record in await read_topic(settings, settings.events_topic, expected=8)
    ]
    clusters = {(e.model_id, e.cluster) for e in events}
    assert clusters == {("eu-model", "eu"), ("us-model", "us")}
    assert eu_bridge.stop() == 0 and us_bridge.stop() == 0


async def test_a_command_for_another_cluster_is_not_carried_out(two: TwoClusters) -> None:
    path, digest = write_archive(
        two.tmp_path / "uploads", "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()})
    )
    key = await register(two, "elsewhere", path.as_uri(), digest)
    bridge = two.start_bridge(two.bridge_settings("eu", ray_replica_work_dir=""))
    await two.command(key, CommandType.DEPLOY, "ap-south")  # no bridge for it here
    await two.command(key, CommandType.RESYNC, "eu")  # a later command this bridge does take

    # The resync is carried out (after the skipped deploy): nothing on Serve, so `deleted`.
    async def resynced() -> list[DeploymentEvent]:
        records = await read_topic(two.settings, two.settings.events_topic, expected=1, timeout_s=5)
        events = [msgspec.json.decode(r.value, type=DeploymentEvent) for r in records]
        assert events, "no event yet"
        return events

    events = await eventually(resynced, timeout_s=60, interval_s=1)
    assert [(e.event_type, e.cluster) for e in events] == [("deployment.deleted", "eu")]
    assert bridge.stop() == 0


def test_a_cluster_with_token_auth_refuses_the_bridge_without_its_token(
    cluster_pair: dict[str, RayCluster],
) -> None:
    cluster = cluster_pair["us"]
    for token, status in (("", "401"), ("not-the-token", "403")):
        adapter = RayDashboardAdapter(Settings(ray_address=cluster.address, ray_auth_token=token))
        with pytest.raises(
            ServeUnavailable, match=f"refused the bridge \\({status}\\).*MODELREG_RAY_AUTH_TOKEN"
        ):
            adapter.connect()
        adapter.close()
    adapter = RayDashboardAdapter(Settings(ray_address=cluster.address, ray_auth_token=cluster.token))
    adapter.connect()
    assert adapter.ray_version is not None and adapter.ray_version.startswith("2.60")
    assert adapter.resources().cpu_total == 1.0
    adapter.close()
