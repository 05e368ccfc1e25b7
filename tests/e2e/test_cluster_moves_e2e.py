"""The newcomer's walk-through of docs/clusters.md on two real Ray clusters (the package's pair, one
with token auth): clusters registered with `modelreg clusters add`, one `modelreg bridge --cluster NAME`
each, placement by name and by labels through the API's deploy body, an alias moved between two deployed
versions and a model moved from one cluster to the other while clients predict through the API, with no
failed prediction; then the cluster that serves them stops (its processes frozen), its models turn
unhealthy ("cluster NAME unreachable"), and come back deployed when it returns and its bridge reconciles.

Three deploys in all (the clusters have one CPU each and the machine two).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import pytest

from modelreg.services.testing.infra import Infra
from modelreg.shared.contracts import ModelKey
from tests.conftest import eventually, insert_api_key
from tests.e2e.conftest import TEST_RESOURCES, BridgeProcess, PairStack, RayCluster, pair_settings, pair_stack
from tests.factories import seed_model_document
from tests.model_archives import LINEAR_B, expected_linear, linear_onnx_bytes, tar_gz, write_archive

pytestmark = pytest.mark.e2e

X = [[1.0, 2.0, 3.0]]
V2_B = LINEAR_B + 10.0  # version 2 answers 10 more: the answers say which version served
# The worker's loss check, faster for the test (the defaults are 30 s and 5 s: docs/clusters.md), with
# room for reports delayed on a loaded machine.
UNREACHABLE_AFTER_S = 20.0


class Walkthrough(PairStack):
    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`modelreg …` as an operator runs it, with the registry's settings in its environment."""
        return subprocess.run(
            [sys.executable, "-m", "modelreg.services.cli", *args],
            env={**os.environ, **self.settings.as_env()},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_bridge(self, name: str, read_key: str) -> BridgeProcess:
        """`modelreg bridge --cluster NAME` with that cluster's address and token; replicas fetch archives
        from the registry's archive route with a read key, as on another machine."""
        cluster = self.clusters[name]
        settings = msgspec.structs.replace(
            self.settings,
            ray_address=cluster.address,
            ray_auth_token=cluster.token,
            serve_port=cluster.serve_port,
            bridge_work_dir=str(self.tmp_path / f"bridge-{name}"),
            ray_replica_work_dir=str(self.tmp_path / f"replica-{name}"),
            bridge_archive_registry_url=self.api_url,
            bridge_archive_registry_key=read_key,
            # Each dashboard exchange waits at most 5 s (a third of this): a frozen cluster is seen soon.
            bridge_ray_timeout_s=15.0,
        )
        log = self.tmp_path / f"bridge-{name}.log"
        bridge = BridgeProcess(settings, log, ["--cluster", name]).start()
        self.bridges.append(bridge)
        return bridge

    def path(self, key: ModelKey) -> str:
        return f"/v1/namespaces/{key.namespace_id}/models/{key.model_id}"

    async def details(self, key: ModelKey) -> dict[str, Any]:
        response = await self.api.get(self.path(key))
        assert response.status_code == 200, response.text
        return dict(response.json()["model"])

    async def wait_for(
        self, key: ModelKey, status: str, timeout_s: float = 180, **info: str
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any]:
            model = await self.details(key)
            assert model["deployment_status"] == status, (
                f"{key}: {model['deployment_status']} ({model['deployment_message']}), waiting for {status}"
            )
            for field, value in info.items():
                assert (model["deployment_info"] or {}).get(field) == value, f"{key}: {field} not {value}"
            return model

        return await eventually(reached, timeout_s=timeout_s, interval_s=0.5)

    async def applications(self, name: str) -> list[str]:
        """The names of this test's Serve applications on a cluster, as its dashboard says."""
        cluster = self.clusters[name]
        headers = {"Authorization": f"Bearer {cluster.token}"} if cluster.token else {}
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(f"{cluster.address}/api/serve/applications/", headers=headers)
        answer.raise_for_status()
        prefix = self.settings.serve_app_prefix
        return sorted(n for n in answer.json()["applications"] if n.startswith(f"{prefix}."))


@pytest.fixture
async def walk(
    infra: Infra, cluster_pair: dict[str, RayCluster], tmp_path: Path
) -> AsyncIterator[Walkthrough]:
    settings = pair_settings(
        infra, tmp_path, cluster_unreachable_after_s=UNREACHABLE_AFTER_S, cluster_check_interval_s=1.0
    )
    async with pair_stack(Walkthrough, settings, cluster_pair, tmp_path, http_timeout_s=60) as stack:
        yield stack


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (read from /proc): a Ray cluster's processes, started by one
    `ray start --block`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


@contextlib.contextmanager
def frozen(cluster: RayCluster) -> Iterator[list[int]]:
    """Every process of the cluster stopped (SIGSTOP) until the block ends, then continued (SIGCONT)."""
    pids = process_tree(cluster.pid)
    assert len(pids) > 3, f"the cluster's process tree is only {pids}"
    stopped = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield stopped
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class PredictionLoop:
    """Clients predicting through the API in a loop: every answer that is not a 200 is a failure."""

    def __init__(self, api: httpx.AsyncClient, path: str, clients: int = 2) -> None:
        self.api, self.path = api, path
        self.failures: list[str] = []
        self.served: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(self.predict()) for _ in range(clients)]

    async def predict(self) -> None:
        while not self.stop.is_set():
            try:
                answer = await self.api.post(self.path, json={"inputs": {"x": X}})
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
                continue
            if answer.status_code != 200:
                self.failures.append(f"{answer.status_code} {answer.text[:300]}")
                continue
            y = np.asarray(answer.json()["outputs"]["y"])
            version = "v2" if np.allclose(y, expected_linear(X, V2_B), rtol=1e-5) else "v1"
            if version == "v1":
                np.testing.assert_allclose(y, expected_linear(X), rtol=1e-5)
            self.served[version] += 1
            await asyncio.sleep(0.02)

    async def served_more(self, version: str, answers: int = 5, timeout_s: float = 60) -> None:
        before = self.served[version]

        async def more() -> None:
            while self.served[version] < before + answers:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(more(), timeout_s)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def test_place_move_and_lose_a_cluster_without_a_failed_prediction(walk: Walkthrough) -> None:
    eu, us = walk.clusters["eu"], walk.clusters["us"]

    # 1. Register both clusters and start one bridge per cluster (docs/clusters.md, "Walk-through").
    for name, cluster in (("eu", eu), ("us", us)):
        added = walk.cli(
            "clusters",
            "add",
            name,
            "--ray-address",
            cluster.address,
            "--serve-url",
            f"http://127.0.0.1:{cluster.serve_port}",
            "--label",
            f"region={name}",
        )
        assert added.returncode == 0, added.stderr
        assert f"modelreg bridge --cluster {name}" in added.stdout
    read_key = await insert_api_key(walk.db, walk.settings, walk.namespace)
    for name in ("eu", "us"):
        walk.start_bridge(name, read_key)

    async def both_healthy() -> bool:
        clusters = (await walk.api.get("/v1/clusters")).json()["clusters"]
        assert {c["name"]: c["healthy"] for c in clusters} == {"eu": True, "us": True}, clusters
        return True

    await eventually(both_healthy, timeout_s=120, interval_s=1)
    listed = walk.cli("clusters", "list")
    assert listed.returncode == 0 and "region=eu" in listed.stdout and "region=us" in listed.stdout

    # Two versions of one model name, their archives on the registry's disk.
    keys = {}
    for version, bias in (("1.0.0", LINEAR_B), ("2.0.0", V2_B)):
        model_id = f"linear-{version[0]}"
        data = tar_gz({"model.onnx": linear_onnx_bytes(bias)})
        path, digest = write_archive(walk.tmp_path / "uploads", f"{model_id}.tar.gz", data)
        document = seed_model_document(
            walk.namespace,
            model_id,
            name="linear",
            version=version,
            model_format="onnx",
            model_archive_url=path.as_uri(),
            model_hash=digest,
            resource_requirements=TEST_RESOURCES,
        )
        await walk.db.custom_models.insert_one(document)
        keys[version[0]] = ModelKey(walk.namespace, model_id)
    v1, v2 = keys["1"], keys["2"]

    # 2. Placement: v1 on eu by name, v2 by labels (only us carries region=us).
    for key, body in ((v1, {"cluster": "eu"}), (v2, {"labels": {"region": "us"}})):
        asked = await walk.api.post(f"{walk.path(key)}/deploy", json=body)
        assert asked.status_code == 200, asked.text
    await walk.wait_for(v1, "deployed", ray_cluster_url=eu.address)
    await walk.wait_for(v2, "deployed", ray_cluster_url=us.address)
    nowhere = await walk.api.post(f"{walk.path(v1)}/deploy", json={"labels": {"region": "ap"}})
    assert nowhere.status_code == 409 and nowhere.json()["error"]["code"] == "no_cluster_fits"

    # 3. An alias moved between the two deployed versions (on two clusters) while clients predict through it.
    aliases = f"/v1/namespaces/{walk.namespace}/names/linear/aliases/production"
    assert (await walk.api.put(aliases, json={"model_id": v1.model_id})).status_code == 200
    loop = PredictionLoop(walk.api, f"{aliases}/predict")
    try:
        await loop.served_more("v1")
        for target, version in ((v2, "v2"), (v1, "v1")):
            moved = await walk.api.put(
                aliases, json={"model_id": target.model_id}, params={"require_deployed": "true"}
            )
            assert moved.status_code == 200, moved.text
            await loop.served_more(version)
    finally:
        await loop.finish()
    assert loop.failures == [], loop.failures[:5]

    # 4. A move: v1 from eu to us, while clients predict through the model's route.
    loop = PredictionLoop(walk.api, f"{walk.path(v1)}/predict")
    try:
        await loop.served_more("v1")
        moved = await walk.api.post(f"{walk.path(v1)}/deploy", json={"cluster": "us"})
        assert moved.status_code == 200, moved.text
        model = await walk.wait_for(v1, "deployed", ray_cluster_url=us.address)
        assert model["deployment_info"]["endpoint"].startswith(f"http://127.0.0.1:{us.serve_port}/")

        async def gone_from_eu() -> bool:
            assert await walk.applications("eu") == []
            return True

        await eventually(gone_from_eu, timeout_s=120, interval_s=1)
        await loop.served_more("v1")
    finally:
        await loop.finish()
    assert loop.failures == [], loop.failures[:5]
    prefix = walk.settings.serve_app_prefix
    assert await walk.applications("us") == [f"{prefix}.{walk.namespace}.{k.model_id}" for k in (v1, v2)]
    # A's late events (deleting, deleted) are in the history; the model stays deployed on us.
    history = (await walk.api.get(f"{walk.path(v1)}/events")).json()
    assert (await walk.details(v1))["deployment_status"] == "deployed"
    assert "deployment.deleted" in {e["event_type"] for e in history["events"]}

    # 5. Cluster loss: every process of us stopped. Its bridge reports that it does not answer; after the
    # timeout both models turn unhealthy, in the details and the history.
    with frozen(us):
        for key in (v1, v2):
            model = await walk.wait_for(key, "unhealthy", timeout_s=120)
            assert model["deployment_message"] == "cluster us unreachable"
            events = (await walk.api.get(f"{walk.path(key)}/events")).json()["events"]
            assert events[0]["event_type"] == "deployment.unhealthy"
            assert events[0]["message"] == "cluster us unreachable"
    # us returns: its bridge reconnects, reconciles, and the models are deployed again, and answer.
    for key in (v1, v2):
        await walk.wait_for(key, "deployed", timeout_s=180, ray_cluster_url=us.address)
    answer = await walk.api.post(f"{walk.path(v2)}/predict", json={"inputs": {"x": X}})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["outputs"]["y"], expected_linear(X, V2_B), rtol=1e-5)

    # Leave the shared clusters empty for the next tests.
    for key in (v1, v2):
        assert (await walk.api.delete(f"{walk.path(key)}/deploy")).status_code in (200, 202)
    for key in (v1, v2):
        await walk.wait_for(key, "not_deployed")
    removed = walk.cli("clusters", "remove", "eu")
    assert removed.returncode == 0, removed.stderr
