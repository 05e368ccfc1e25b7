"""Deploy requests with registered clusters, on in-memory fakes: where the command goes, what is recorded,
moves, 409 no_cluster_fits, and undeploys that follow the placement."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from modelreg.services.api.domain_errors import NoClusterFits
from modelreg.services.api.models.schemas import DeployRequest
from modelreg.services.api.models.service import ModelService
from modelreg.shared.contracts import ClusterResources, CommandType, DeploymentStatus, ModelFormat, ModelKey
from modelreg.shared.deployment_rules import DesiredState
from modelreg.shared.documents import ClusterRecord, DeploymentInfoFields, ModelDetails
from modelreg.shared.settings import Settings
from tests.api_fakes import FakeArchiveStorage, FakeCommandPublisher, FakeModelStore

KEY = ModelKey("ns", "m1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GIB = 1024**3


class FakeClusters:
    def __init__(self, *records: ClusterRecord) -> None:
        self.records = list(records)

    async def all(self) -> list[ClusterRecord]:
        return self.records

    async def models_placed(self) -> dict[str, int]:
        return {}


def record(name: str, cpus: float = 4, healthy: bool = True, **labels: str) -> ClusterRecord:
    free = ClusterResources(
        cpu_total=cpus, cpu_free=cpus, memory_total_bytes=16 * GIB, memory_free_bytes=16 * GIB
    )
    return ClusterRecord(
        name=name,
        ray_address=f"{name}:6379",
        serve_url=f"http://{name}:8000",
        labels=labels,
        healthy=healthy,
        last_seen_at=T0,
        resources=msgspec.to_builtins(free),
    )


class Registry:
    def __init__(self, tmp_path: Path, *clusters: ClusterRecord) -> None:
        self.store = FakeModelStore()
        self.publisher = FakeCommandPublisher()
        settings = Settings(archive_root=str(tmp_path))
        self.service = ModelService(
            self.store,
            FakeArchiveStorage(tmp_path),
            self.publisher,
            settings,
            clusters=FakeClusters(*clusters),
        )

    def model(self, **fields) -> ModelDetails:
        values = {
            "model_id": KEY.model_id,
            "namespace_id": KEY.namespace_id,
            "name": "resnet",
            "version": "1",
            "model_archive_url": "file:///a.tar.gz",
            "model_format": ModelFormat.ONNX,
            "model_hash": "0" * 64,
            "created_at": T0,
            "updated_at": T0,
        }
        return self.store.add(ModelDetails(**{**values, **fields}))

    def deployed_on(self, cluster: str) -> ModelDetails:
        return self.model(
            deployed=True,
            deployment_status=DeploymentStatus.DEPLOYED,
            deployment_info=DeploymentInfoFields(endpoint=f"http://{cluster}:8000/ns/m1", base_image="img"),
            cluster=cluster,
            desired_cluster=cluster,
            desired_state=DesiredState.DEPLOYED,
            desired_at=T0,
            observed_at=T0,
        )


async def test_a_bodiless_deploy_goes_to_the_cluster_with_most_room_and_is_recorded(tmp_path) -> None:
    registry = Registry(tmp_path, record("a", cpus=2), record("b", cpus=6))
    registry.model()
    answer = await registry.service.requests.deploy(KEY)
    [command] = registry.publisher.published
    assert (command.command_type, command.cluster) == (CommandType.DEPLOY, "b")
    assert answer.body.deployment_status == "pending"
    assert registry.store.models[KEY].desired_cluster == "b"


async def test_failover_is_recorded_only_when_asked(tmp_path) -> None:
    registry = Registry(tmp_path, record("a"))
    registry.model()
    await registry.service.requests.deploy(KEY, wish=DeployRequest(cluster="a", failover=True))
    assert registry.store.models[KEY].failover is True


async def test_without_clusters_the_default_bridge_as_before(tmp_path) -> None:
    registry = Registry(tmp_path)
    registry.model()
    await registry.service.requests.deploy(KEY)
    assert registry.publisher.published[0].cluster is None
    assert registry.store.models[KEY].desired_cluster is None
    with pytest.raises(NoClusterFits) as refused:
        await registry.service.requests.deploy(KEY, wish=DeployRequest(labels={"region": "eu"}))
    assert refused.value.details == {"clusters": {}}


async def test_deployed_model_stays_unless_asked_elsewhere_then_moves(tmp_path) -> None:
    registry = Registry(tmp_path, record("a", cpus=1), record("b", cpus=8, region="eu"))
    registry.deployed_on("a")
    same = await registry.service.requests.deploy(KEY)
    assert same.body.cached is True and not registry.publisher.published, "no move to the roomier cluster"
    moved = await registry.service.requests.deploy(KEY, wish=DeployRequest(labels={"region": "eu"}))
    [command] = registry.publisher.published
    assert command.cluster == "b" and moved.body.deployment_status == "deployed"
    assert moved.body.message.startswith("Move requested")


async def test_nothing_fits_refuses_with_reasons_and_records_nothing(tmp_path) -> None:
    registry = Registry(tmp_path, record("a", cpus=0.5), record("b", healthy=False))
    registry.model()
    with pytest.raises(NoClusterFits) as refused:
        await registry.service.requests.deploy(KEY)
    assert refused.value.code == "no_cluster_fits"
    assert set(refused.value.details["clusters"]) == {"a", "b"}
    assert registry.store.models[KEY].desired_state is None and not registry.publisher.published


async def test_undeploy_during_a_move_goes_to_both_clusters(tmp_path) -> None:
    registry = Registry(tmp_path, record("a"), record("b"))
    registry.deployed_on("a")
    await registry.service.requests.deploy(KEY, wish=DeployRequest(cluster="b"))
    await registry.service.requests.request(KEY, DesiredState.NOT_DEPLOYED)
    undeploys = [c.cluster for c in registry.publisher.published if c.command_type is CommandType.UNDEPLOY]
    assert undeploys == ["a", "b"]
