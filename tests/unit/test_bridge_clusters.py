"""The bridge as one of several clusters' bridges, on in-memory fakes: which commands it carries out, the
cluster on its events, its health reports (also while the cluster does not answer), where replicas fetch
archives, and the declarative Serve config it PUTs to the dashboard (pure)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from modelreg.services.serve_bridge.bridge import Bridge
from modelreg.services.serve_bridge.health import HealthReporter, health_report
from modelreg.services.serve_bridge.model_server import ModelSpec
from modelreg.services.serve_bridge.naming import app_name, bridge_consumer_group
from modelreg.services.serve_bridge.replica_archives import registry_archive_url, replica_archive_url
from modelreg.services.serve_bridge.serve_config import (
    IMPORT_PATH,
    DashboardAnswerError,
    application_config,
    cluster_resources,
    desired_config,
    observations,
    serve_running,
)
from modelreg.services.serve_bridge.transitions import observed_on_this_cluster
from modelreg.shared.cluster_routing import ObservedPlacement
from modelreg.shared.contracts import (
    ClusterHealthReport,
    CommandType,
    DeploymentCommand,
    EventType,
    ModelFormat,
    ModelKey,
    encode,
)
from modelreg.shared.documents import ModelDetails, ResourceRequirementsFields
from modelreg.shared.retry import RetryPolicy
from modelreg.shared.settings import Settings
from tests.fakes import FakeServe, InMemoryModels, RecordingPublisher, app, make_bridge
from tests.model_archives import tar_gz, write_archive

KEY = ModelKey("ns", "m1")
PARTITION = TopicPartition("commands", 0)


class Rig(msgspec.Struct):
    bridge: Bridge
    serve: FakeServe
    models: InMemoryModels
    sent: RecordingPublisher
    settings: Settings


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = Settings(
        archive_root=str(tmp_path / "archives"),
        bridge_work_dir=str(tmp_path / "bridge"),
        bridge_cluster="eu-gpu",
        bridge_poll_interval_s=0.01,
    )
    serve, models = FakeServe(), InMemoryModels()
    path, digest = write_archive(Path(settings.archive_root), "m1.tar.gz", tar_gz({"model.onnx": b"graph"}))
    models.add(
        ModelDetails(
            namespace_id=KEY.namespace_id,
            model_id=KEY.model_id,
            name="m1",
            version="1",
            model_archive_url=path.as_uri(),
            model_format=ModelFormat.ONNX,
            model_hash=digest,
            resource_requirements=ResourceRequirementsFields(num_cpus=0.5, num_gpus=0, memory=1024),
        )
    )
    bridge, sent, calls = make_bridge(settings, serve, models)
    yield Rig(bridge, serve, models, sent, settings)
    calls.shutdown()


def record(command_type: CommandType, cluster: str | None, offset: int = 0) -> ConsumerRecord:
    command = DeploymentCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        namespace_id=KEY.namespace_id,
        model_id=KEY.model_id,
        requested_at=datetime.now(UTC),
        cluster=cluster,
    )
    return ConsumerRecord("commands", 0, offset, 0, 0, KEY.kafka_key(), encode(command), None, 0, 0, [])


# --- which commands, and the cluster on every event ------------------------------------------------------


async def test_only_commands_for_its_own_cluster_are_carried_out(rig: Rig) -> None:
    await rig.bridge.commands.handle_batch({PARTITION: [record(CommandType.DEPLOY, "us-cpu")]})
    await rig.bridge.commands.handle_batch({PARTITION: [record(CommandType.DEPLOY, None)]})
    assert rig.serve.deployed == [] and rig.sent.events() == []

    await rig.bridge.commands.handle_batch({PARTITION: [record(CommandType.DEPLOY, "eu-gpu")]})

    (deployed,) = rig.serve.deployed
    assert deployed["app_name"] == app_name(rig.settings.serve_app_prefix, KEY)
    assert [e.event_type for e in rig.sent.events()] == [EventType.STARTED]


async def test_an_other_clusters_command_does_not_supersede_ours_in_a_batch(rig: Rig) -> None:
    batch = [record(CommandType.DEPLOY, "eu-gpu", 0), record(CommandType.UNDEPLOY, "us-cpu", 1)]
    await rig.bridge.commands.handle_batch({PARTITION: batch})
    assert len(rig.serve.deployed) == 1 and rig.serve.deleted == []


async def test_every_event_names_the_bridges_cluster(rig: Rig) -> None:
    rig.serve.apps[app_name(rig.settings.serve_app_prefix, KEY)] = app("onnx-0123456789abcdef")
    await rig.bridge.start()
    await rig.bridge.commands.handle_batch({PARTITION: [record(CommandType.UNDEPLOY, "eu-gpu")]})
    events = rig.sent.events()
    assert [e.event_type for e in events] == [EventType.READY, EventType.DELETING]
    assert {e.cluster for e in events} == {"eu-gpu"}


async def test_reconcile_deletes_only_this_clusters_models_that_serve_lost(rig: Rig) -> None:
    mine, theirs, unplaced = ModelKey("ns", "mine"), ModelKey("ns", "theirs"), ModelKey("ns", "unplaced")
    rig.models.on_serve = {mine, theirs, unplaced}
    rig.models.placements = {
        mine: ObservedPlacement(ray_cluster_url=FakeServe.cluster_url),
        theirs: ObservedPlacement(ray_cluster_url="http://other-head-svc:8265"),
    }
    await rig.bridge.session.connect()

    await rig.bridge.watcher.reconcile()

    # `unplaced` (no cluster URL yet) belongs to the default cluster's bridge, `theirs` to another one.
    assert [(e.key, e.event_type) for e in rig.sent.events()] == [(mine, EventType.DELETED)]


@pytest.mark.parametrize(
    ("model_url", "cluster", "here", "expected"),
    [
        ("http://eu:8265", "eu", "http://eu:8265", True),
        ("http://us:8265", "eu", "http://eu:8265", False),
        (None, "eu", "http://eu:8265", False),
        (None, "local", "http://ray:8265", True),
        ("127.0.0.1:6379", "local", "http://ray:8265", True),  # from before dashboards
        ("http://us:8265", "local", "http://ray:8265", False),
        ("127.0.0.1:6379", "eu", "http://eu:8265", False),
    ],
)
def test_a_model_without_a_recorded_placement_falls_back_to_its_cluster_url(
    model_url: str | None, cluster: str, here: str, expected: bool
) -> None:
    placement = ObservedPlacement(ray_cluster_url=model_url)
    assert observed_on_this_cluster(placement, cluster, here) is expected


@pytest.mark.parametrize(
    ("placement", "cluster", "expected"),
    [
        (ObservedPlacement("eu", "http://eu:8265"), "eu", True),
        # The dashboard's address changed (another Service name, a port): the name still says it is ours.
        (ObservedPlacement("eu", "http://old-eu-head:8265"), "eu", True),
        # Another cluster's model, even if its deployment info names this URL (a cluster renamed, a URL
        # reused by a new cluster): the recorded placement wins.
        (ObservedPlacement("us", "http://eu:8265"), "eu", False),
        (ObservedPlacement("local", "127.0.0.1:6379"), "local", True),
        (ObservedPlacement("eu", "127.0.0.1:6379"), "local", False),
        # Moving eu -> us: until us is ready the model lives on eu, and only eu reconciles it.
        (ObservedPlacement("eu", "http://eu:8265", desired_cluster="us"), "eu", True),
        (ObservedPlacement("eu", "http://eu:8265", desired_cluster="us"), "us", False),
        # Living nowhere yet: the cluster it is asked on, else the default one.
        (ObservedPlacement(desired_cluster="us"), "us", True),
        (ObservedPlacement(desired_cluster="us"), "local", False),
        (ObservedPlacement(), "local", True),
    ],
)
def test_a_bridge_reconciles_the_models_placed_on_its_cluster_by_name(
    placement: ObservedPlacement, cluster: str, expected: bool
) -> None:
    assert observed_on_this_cluster(placement, cluster, "http://eu:8265") is expected


@given(
    placement=st.builds(
        ObservedPlacement,
        st.one_of(st.none(), st.sampled_from(["local", "eu", "us"])),
        st.one_of(st.none(), st.sampled_from(["http://eu:8265", "http://us:8265", "127.0.0.1:6379"])),
        st.one_of(st.none(), st.sampled_from(["local", "eu", "us"])),
    )
)
def test_exactly_one_bridge_reconciles_each_model(placement: ObservedPlacement) -> None:
    """Of the bridges of local, eu and us, at most one takes a model, and exactly one when it names a
    known cluster (or none at all): no model is reconciled twice, by two clusters' views of Serve."""
    urls = {"local": "http://local:8265", "eu": "http://eu:8265", "us": "http://us:8265"}
    takers = [name for name, url in urls.items() if observed_on_this_cluster(placement, name, url)]
    assert len(takers) <= 1
    if placement.cluster is not None:
        assert takers == [placement.cluster]


def test_the_default_cluster_keeps_the_consumer_group_and_others_get_their_own() -> None:
    assert bridge_consumer_group("modelreg-bridge", "local") == "modelreg-bridge"
    assert bridge_consumer_group("modelreg-bridge", "eu-gpu") == "modelreg-bridge-eu-gpu"


# --- health reports ----------------------------------------------------------------------------------------


class KeyedRecorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    async def publish_keyed(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, key, value))


def reporter(rig: Rig) -> tuple[HealthReporter, KeyedRecorder]:
    recorder = KeyedRecorder()
    retry = RetryPolicy(rig.bridge.reporter.retry.stop, max_backoff_s=0.01)
    return HealthReporter(rig.settings, rig.bridge.session, recorder, retry), recorder


async def test_a_health_report_names_serve_the_owned_applications_and_the_resources(rig: Rig) -> None:
    rig.serve.apps[app_name(rig.settings.serve_app_prefix, KEY)] = app("onnx-0123456789abcdef", "DEPLOYING")
    rig.serve.apps["other-registry.ns.m9"] = app("onnx-0123456789abcdef")
    health, recorder = reporter(rig)

    report = await health.report_once()

    ((topic, key, value),) = recorder.records
    assert topic == rig.settings.cluster_health_topic and key == b"eu-gpu"
    assert msgspec.json.decode(value, type=ClusterHealthReport) == report
    assert report.cluster == "eu-gpu" and report.serve_up is True and report.message is None
    assert [(a.namespace_id, a.model_id, a.status) for a in report.applications] == [
        ("ns", "m1", "DEPLOYING")
    ]
    assert report.resources == rig.serve.free
    assert report.serve_url == "http://127.0.0.1:8001"


async def test_an_unreachable_cluster_is_reported_as_serve_down_with_the_reason(rig: Rig) -> None:
    health, recorder = reporter(rig)
    first = await health.report_once()
    rig.serve.down = True

    report = await health.report_once()

    assert report.serve_up is False and report.applications == []
    assert report.message is not None and report.message.startswith("the Ray cluster does not answer")
    assert report.sequence > first.sequence and len(recorder.records) == 2


def test_a_report_lists_applications_in_a_stable_order() -> None:
    report = health_report(
        Settings(bridge_cluster="b"),
        sequence=1,
        ray_address="http://ray:8265",
        serve_up=True,
        applications=[(ModelKey("z", "1"), "RUNNING"), (ModelKey("a", "2"), "UNHEALTHY")],
        message="x\x00y",
    )
    assert [a.namespace_id for a in report.applications] == ["a", "z"]
    assert report.message == "x\ufffdy"


# --- where replicas fetch archives -------------------------------------------------------------------------


def test_replicas_fetch_the_models_own_url_unless_a_registry_is_set() -> None:
    own = "s3://bucket/ns/m1.tar.gz"
    assert replica_archive_url(Settings(), KEY, own) == own
    settings = Settings(bridge_archive_registry_url="https://models.example.com/")
    assert replica_archive_url(settings, KEY, own) == (
        "https://models.example.com/v1/namespaces/ns/models/m1/archive"
    )
    assert registry_archive_url("http://r", ModelKey("a b", "m/1")) == (
        "http://r/v1/namespaces/a%20b/models/m%2F1/archive"
    )


async def test_the_spec_carries_the_registry_route_the_key_and_the_replica_work_dir(tmp_path: Path) -> None:
    settings = Settings(
        archive_root=str(tmp_path / "archives"),
        bridge_work_dir=str(tmp_path / "bridge"),
        ray_replica_work_dir="/var/lib/modelreg",
        bridge_archive_registry_url="http://registry:8000",
        bridge_archive_registry_key="mrk_read",
    )
    serve, models = FakeServe(), InMemoryModels()
    path, digest = write_archive(Path(settings.archive_root), "m1.tar.gz", tar_gz({"model.onnx": b"graph"}))
    models.add(
        ModelDetails(
            namespace_id="ns",
            model_id="m1",
            name="m1",
            version="1",
            model_archive_url=path.as_uri(),
            model_format=ModelFormat.ONNX,
            model_hash=digest,
        )
    )
    bridge, _, calls = make_bridge(settings, serve, models)
    try:
        assert await bridge.commands.deploy(KEY) == "deploying"
    finally:
        calls.shutdown()
    spec: ModelSpec = serve.deployed[0]["spec"]
    assert spec.archive_url == "http://registry:8000/v1/namespaces/ns/models/m1/archive"
    assert spec.archive_registry_url == "http://registry:8000" and spec.archive_registry_key == "mrk_read"
    assert spec.cache_dir == "/var/lib/modelreg"


# --- the declarative config (pure) -------------------------------------------------------------------------


def spec() -> ModelSpec:
    return ModelSpec(
        namespace_id="ns",
        model_id="m1",
        model_format="onnx",
        model_hash="a" * 64,
        archive_url="s3://b/k",
        cache_dir="/tmp/c",
    )


def details(*apps: tuple[str, str, dict[str, Any] | None]) -> dict[str, Any]:
    return {
        "controller_info": {"node_id": "x"},
        "applications": {
            name: {"status": status, "message": "", "deployed_app_config": config, "deployments": {}}
            for name, status, config in apps
        },
    }


def test_an_application_config_names_the_builder_its_args_and_the_deployments_options() -> None:
    config = application_config(
        app_name="p.ns.m1",
        route_prefix="/ns/m1",
        deployment_name="onnx-aaaaaaaaaaaaaaaa",
        spec=spec(),
        ray_actor_options={"num_cpus": 0.25},
        revision="r1",
    )
    assert config["import_path"] == IMPORT_PATH and config["route_prefix"] == "/ns/m1"
    assert config["args"]["deployment_name"] == "onnx-aaaaaaaaaaaaaaaa"
    assert msgspec.convert(config["args"]["spec"], ModelSpec) == spec()
    assert config["deployments"] == [
        {"name": "onnx-aaaaaaaaaaaaaaaa", "num_replicas": 1, "ray_actor_options": {"num_cpus": 0.25}}
    ]


def test_the_put_body_keeps_every_other_application_and_changes_only_one() -> None:
    mine_old = {"name": "p.ns.m1", "args": {"revision": "old"}}
    theirs = {"name": "other.x", "import_path": "their:app"}
    running = details(
        ("p.ns.m1", "RUNNING", mine_old), ("other.x", "RUNNING", theirs), ("imperative", "RUNNING", None)
    )
    mine_new = {"name": "p.ns.m1", "args": {"revision": "new"}}

    put = desired_config(running, http_host="0.0.0.0", http_port=8001, put=mine_new)
    removed = desired_config(running, http_host="0.0.0.0", http_port=8001, remove="p.ns.m1")
    added = desired_config(details(), http_host="h", http_port=1, put=mine_new)

    assert put == {"http_options": {"host": "0.0.0.0", "port": 8001}, "applications": [theirs, mine_new]}
    assert removed["applications"] == [theirs]
    assert added["applications"] == [mine_new]


def test_an_application_being_deleted_is_not_sent_back() -> None:
    going = details(("p.ns.m1", "DELETING", {"name": "p.ns.m1"}))
    assert desired_config(going, http_host="h", http_port=1)["applications"] == []


def test_observations_are_the_prefixed_applications_with_their_deployments() -> None:
    answer = details(("p.ns.m1", "DEPLOY_FAILED", None), ("q.ns.m1", "RUNNING", None))
    answer["applications"]["p.ns.m1"]["deployments"] = {
        "onnx-aaaaaaaaaaaaaaaa": {"status": "UNHEALTHY", "message": "boom"}
    }
    observed = observations(answer, "p")
    assert list(observed) == ["p.ns.m1"]
    assert observed["p.ns.m1"].status == "DEPLOY_FAILED"
    assert observed["p.ns.m1"].deployment_name == "onnx-aaaaaaaaaaaaaaaa"
    assert observed["p.ns.m1"].deployments["onnx-aaaaaaaaaaaaaaaa"].message == "boom"
    assert serve_running(answer) and not serve_running({"controller_info": {}, "applications": {}})
    with pytest.raises(DashboardAnswerError):
        observations({"detail": "nope"}, "p")


def test_an_application_not_built_yet_is_known_by_the_deployment_its_config_names() -> None:
    config = {"name": "p.ns.m1", "deployments": [{"name": "onnx-aaaaaaaaaaaaaaaa", "num_replicas": 1}]}
    answer = details(("p.ns.m1", "DEPLOYING", config))  # Serve lists no deployments until it built the app
    (observed,) = observations(answer, "p").values()
    assert observed.status == "DEPLOYING" and observed.deployment_name == "onnx-aaaaaaaaaaaaaaaa"
    assert observations(details(("p.ns.m1", "NOT_STARTED", None)), "p")["p.ns.m1"].deployment_name is None


def test_resources_are_read_from_the_load_metrics_usage() -> None:
    usage = {"CPU": [0.75, 2.0], "GPU": [1.0, 4.0], "memory": [1e9, 4e9], "objectStoreMemory": [0, 1]}
    status = {"data": {"clusterStatus": {"loadMetricsReport": {"usage": usage}}}}
    resources = cluster_resources(status)
    assert (resources.cpu_total, resources.cpu_free) == (2.0, 1.25)
    assert (resources.gpu_total, resources.gpu_free) == (4.0, 3.0)
    assert (resources.memory_total_bytes, resources.memory_free_bytes) == (4_000_000_000, 3_000_000_000)
    no_gpu = cluster_resources({"data": {"clusterStatus": {"loadMetricsReport": {"usage": {"CPU": [0, 1]}}}}})
    assert no_gpu.gpu_total == 0 and no_gpu.cpu_free == 1
    with pytest.raises(DashboardAnswerError):
        cluster_resources({"data": {"clusterStatus": None}})


# --- the command line ---------------------------------------------------------------------------------------


def test_bridge_refuses_a_bad_cluster_name_and_an_address_that_is_not_a_dashboard(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.services.cli import main

    assert main(["bridge", "--cluster", "Not_A_Name"]) == 2
    assert "--cluster" in capsys.readouterr().err

    monkeypatch.setenv("MODELREG_RAY_ADDRESS", "ray://ray-head:10001")
    assert main(["bridge", "--cluster", "eu"]) == 2
    assert "must be the Ray dashboard's URL" in capsys.readouterr().err
