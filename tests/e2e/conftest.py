"""End-to-end fixtures: a local Ray cluster (and a pair of them) shared by the tests of this package; per test
a bridge process, the worker, the API.

The clusters are package-scoped: started by the first test that uses them, stopped once a worker leaves this
package, so they do not idle beside the rest of the suite (under xdist, tests/xdist_groups.py keeps the tests
sharing one on one worker, one after the other)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from modelreg.services.admin import publish_command
from modelreg.services.devstack import embedded
from modelreg.services.testing.infra import Infra
from modelreg.services.worker.main import run_worker
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.contracts import CommandType, DeploymentCommand, ModelKey
from modelreg.shared.settings import Settings
from tests.conftest import eventually, insert_api_key, make_settings
from tests.factories import seed_model_document

# Small enough that several models fit next to each other on a 2-CPU machine.
TEST_RESOURCES = {"num_cpus": 0.25, "num_gpus": 0, "memory": 256 * 1024**2}


@dataclass(frozen=True)
class RayCluster:
    address: str  # the dashboard URL: the only address the bridge uses
    serve_port: int
    log_dir: Path
    name: str = "local"
    token: str = ""
    pid: int = 0  # `ray start --block`: its process tree is the cluster's processes
    temp_dir: Path | None = None


@pytest.fixture(scope="package")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    log_dir = tmp_path_factory.mktemp("ray")
    # Ray keeps Unix sockets under its temp dir; pytest's paths are too long for them.
    temp_dir = Path(tempfile.mkdtemp(prefix="mr-ray-", dir="/tmp"))
    head = embedded.ray_head(temp_dir, log_dir, num_cpus=2)
    try:
        head.start(timeout_s=120)
        embedded.wait_for_ray(head, timeout_s=120)
        yield RayCluster(head.url, embedded.free_port(), log_dir)
    finally:
        head.stop(timeout_s=60)
        shutil.rmtree(temp_dir, ignore_errors=True)


# Credentials of the tests' moto S3 server, for the clusters' replicas and the bridges alike.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="package")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto S3 server for the package's tests (the clusters' replicas fetch archives from it)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in S3_TEST_ENV.items():
            patch.setenv(name, value)
        server = embedded.moto(tmp_path_factory.mktemp("moto")).start(timeout_s=60)
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(scope="package")
def cluster_pair(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[dict[str, RayCluster]]:
    """Two Ray clusters, each its own process tree in its own directory with one CPU and its dashboard, as
    KubeRay would run two heads; `us` requires a token (RAY_AUTH_MODE=token). Stopped by their own pids."""
    token = uuid.uuid4().hex
    heads: list[tuple[embedded.ServerProcess, Path]] = []
    clusters: dict[str, RayCluster] = {}
    try:
        for name, extra in (("eu", {}), ("us", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})):
            log_dir = tmp_path_factory.mktemp(f"ray-{name}")
            temp_dir = Path(tempfile.mkdtemp(prefix=f"mr-{name}-", dir="/tmp"))
            head = embedded.ray_head(temp_dir, log_dir, num_cpus=1, env={**S3_TEST_ENV, **extra})
            heads.append((head, temp_dir))
            head.start(timeout_s=120)
            embedded.wait_for_ray(head, timeout_s=120)
            assert head.process is not None
            clusters[name] = RayCluster(
                head.url,
                embedded.free_port(),
                log_dir,
                name,
                extra.get("RAY_AUTH_TOKEN", ""),
                head.process.pid,
                temp_dir,
            )
        yield clusters
    finally:
        for head, temp_dir in heads:
            head.stop(timeout_s=60)
            shutil.rmtree(temp_dir, ignore_errors=True)


class BridgeProcess:
    """`modelreg bridge` as its own process, so a test can SIGKILL it like a crash."""

    def __init__(self, settings: Settings, log_path: Path, args: Sequence[str] = ()) -> None:
        self.settings = settings
        self.log_path = log_path
        self.args = list(args)  # e.g. ["--cluster", "eu"]
        self.process: subprocess.Popen | None = None

    def start(self) -> BridgeProcess:
        log = self.log_path.open("ab")
        env = {**os.environ, **self.settings.as_env()}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "modelreg.services.cli", "bridge", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def e2e_settings(infra: Infra, ray_cluster: RayCluster, tmp_path: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return make_settings(
        infra,
        ray_address=ray_cluster.address,
        serve_port=ray_cluster.serve_port,
        serve_app_prefix=f"t{suffix}",
        bridge_consumer_group=f"bridge-{suffix}",
        bridge_poll_interval_s=0.5,
        bridge_work_dir=str(tmp_path / "bridge"),
        archive_root=str(tmp_path / "archives"),
        # The tests write their archives there, outside the archive root: allowed explicitly.
        archive_allowed_roots=str(tmp_path / "uploads"),
    )


@dataclass
class Registry:
    """What every e2e test drives: the settings, the database, an admin client of the API, and its bridges."""

    settings: Settings
    db: Any
    api: httpx.AsyncClient
    api_url: str
    bridges: list[BridgeProcess]


@contextlib.asynccontextmanager
async def registry(settings: Settings, tmp_path: Path, http_timeout_s: float = 30) -> AsyncIterator[Registry]:
    """Topics, the worker (in this process), the read API (its own process on `settings.api_port`) and an
    admin key; on exit the bridges a test started, the API and the worker stop and the database is dropped."""
    await kafka.ensure_topics(settings, settings.topics)
    client = await mongo.connect(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    api_url = f"http://127.0.0.1:{settings.api_port}"
    api = embedded.ServerProcess(
        name="api",
        args=[sys.executable, "-m", "modelreg.services.cli", "api"],
        port=settings.api_port,
        url=api_url,
        log_path=tmp_path / "api.log",
        env=settings.as_env(),
    )
    bridges: list[BridgeProcess] = []
    try:
        await asyncio.to_thread(api.start, 60)
        db = client[settings.mongodb_database]
        key = await insert_api_key(db, settings, admin=True)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=api_url, timeout=http_timeout_s, headers=headers) as http:
            yield Registry(settings, db, http, api_url, bridges)
    finally:
        for bridge in bridges:
            await asyncio.to_thread(bridge.stop)
        await asyncio.to_thread(api.stop)
        stop.set()
        await asyncio.wait_for(worker, 30)
        await client.drop_database(settings.mongodb_database)
        await client.close()


def pair_settings(infra: Infra, tmp_path: Path, **overrides: Any) -> Settings:
    """A test's settings on the package's cluster pair: its own API port, Serve application prefix (the pair
    is shared, so a test sees and removes only its own applications), bridge consumer group and archives."""
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, Any] = dict(
        api_port=embedded.free_port(),
        serve_app_prefix=f"t{suffix}",
        bridge_consumer_group=f"bridge-{suffix}",
        bridge_poll_interval_s=0.5,
        bridge_health_interval_s=1.0,
        archive_root=str(tmp_path / "archives"),
        archive_allowed_roots=str(tmp_path / "uploads"),
    )
    return make_settings(infra, **{**values, **overrides})


class PairStack(msgspec.Struct):
    """A test's registry on the package's cluster pair; the test files subclass it with their own steps."""

    settings: Settings
    db: Any
    api: httpx.AsyncClient
    api_url: str
    clusters: dict[str, RayCluster]
    tmp_path: Path
    bridges: list[BridgeProcess]
    namespace: str


P = TypeVar("P", bound=PairStack)


@contextlib.asynccontextmanager
async def pair_stack(
    kind: type[P],
    settings: Settings,
    clusters: dict[str, RayCluster],
    tmp_path: Path,
    http_timeout_s: float = 30,
) -> AsyncIterator[P]:
    """`registry` for a test on the pair (settings from `pair_settings`), in the test's own namespace."""
    async with registry(settings, tmp_path, http_timeout_s) as running:
        namespace = f"ns_{settings.serve_app_prefix[1:]}"
        yield kind(
            settings, running.db, running.api, running.api_url, clusters, tmp_path, running.bridges, namespace
        )


@pytest.fixture
async def stack(e2e_settings: Settings, tmp_path: Path) -> AsyncIterator[E2EStack]:
    """Topics, the worker (in this process), the read API (its own process) and a way to start bridges."""
    settings = msgspec.structs.replace(e2e_settings, api_port=embedded.free_port())
    async with registry(settings, tmp_path) as running:
        yield E2EStack(settings, running.db, running.api, running.bridges, tmp_path)


@dataclass
class E2EStack:
    settings: Settings
    db: Any
    api: Any
    bridges: list[BridgeProcess]
    tmp_path: Path
    namespace: str = ""

    def __post_init__(self) -> None:
        self.namespace = f"ns_{uuid.uuid4().hex[:8]}"

    def start_bridge(self) -> BridgeProcess:
        bridge = BridgeProcess(self.settings, self.tmp_path / f"bridge-{len(self.bridges)}.log").start()
        self.bridges.append(bridge)
        return bridge

    async def register(self, model_id: str, model_format: str, archive: Path, model_hash: str) -> ModelKey:
        document = seed_model_document(
            self.namespace,
            model_id,
            model_format=model_format,
            model_archive_url=archive.as_uri(),
            model_hash=model_hash,
            resource_requirements=TEST_RESOURCES,
        )
        await self.db.custom_models.insert_one(document)
        return ModelKey(self.namespace, model_id)

    async def command(self, key: ModelKey, command_type: CommandType) -> None:
        await publish_command(
            self.settings,
            DeploymentCommand(
                command_id=uuid.uuid4(),
                command_type=command_type,
                namespace_id=key.namespace_id,
                model_id=key.model_id,
                requested_at=datetime.now(UTC),
            ),
        )

    async def details(self, key: ModelKey) -> dict[str, Any]:
        response = await self.api.get(f"/v1/namespaces/{key.namespace_id}/models/{key.model_id}")
        assert response.status_code == 200, response.text
        return response.json()["model"]

    async def wait_for_status(self, key: ModelKey, status: str, timeout_s: float = 150) -> dict[str, Any]:
        async def reached() -> dict[str, Any]:
            model = await self.details(key)
            assert model["deployment_status"] == status, (
                f"{key}: {model['deployment_status']} ({model['deployment_message']}), waiting for {status}"
            )
            return model

        return await eventually(reached, timeout_s=timeout_s, interval_s=0.5)

    async def history(self, key: ModelKey) -> list[dict[str, Any]]:
        document = await self.db.custom_models.find_one(
            {"namespace_id": key.namespace_id, "model_id": key.model_id}
        )
        return document.get("deployment_history", [])
