"""The bridge's cache of unpacked models stays bounded: unused models are evicted, running ones never."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelreg.services.serve_bridge.materialize import cached_model_dir, prepare_model_files
from modelreg.services.serve_bridge.model_cache import ModelCache
from modelreg.services.serve_bridge.naming import deployment_name
from modelreg.services.serve_bridge.transitions import AppObservation, DeploymentObservation
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.contracts import ModelKey
from modelreg.shared.settings import Settings
from tests.model_archives import tar_gz, write_archive

MODEL_BYTES = 100_000


def running(model_hash: str) -> AppObservation:
    name = deployment_name("onnx", model_hash)
    return AppObservation(status="RUNNING", deployments={name: DeploymentObservation(status="HEALTHY")})


@dataclass
class Cache:
    settings: Settings
    storage: ArchiveStorage
    cache: ModelCache


@pytest.fixture
def bridge(tmp_path: Path) -> Cache:
    settings = Settings(
        archive_root=str(tmp_path / "archives"),
        bridge_work_dir=str(tmp_path / "bridge"),
        bridge_cache_max_bytes=3 * MODEL_BYTES + 1000,  # room for three unpacked models
    )
    return Cache(settings, ArchiveStorage(settings), ModelCache(settings))


async def materialized(bridge: Cache, name: str) -> str:
    path, digest = write_archive(
        Path(bridge.settings.archive_root), f"{name}.tar.gz", tar_gz({"model.onnx": os.urandom(MODEL_BYTES)})
    )
    await prepare_model_files(bridge.storage, path.as_uri(), digest, bridge.cache.root)
    return digest


def cached(bridge: Cache) -> set[str]:
    return {p.name for p in (bridge.cache.root / "models").iterdir()}


async def test_unused_models_are_evicted_least_recently_used_first_and_running_ones_kept(bridge) -> None:
    first, second, third, fourth = [await materialized(bridge, f"m{i}") for i in range(4)]
    for age, digest in enumerate([first, second, third, fourth]):
        os.utime(cached_model_dir(bridge.cache.root, digest), (1000 + age, 1000 + age))
    # The oldest one runs on Serve; the deploy of the second is in hand.
    owned = {ModelKey("ns", "a"): ("modelreg.ns.a", running(first))}
    bridge.cache.materializing.add(second)

    evicted = await bridge.cache.evict_unused(owned, bridge.cache.deploys_done)

    assert evicted == [third]  # four models of 100 kB, bound ~300 kB: one must go, the oldest unused
    assert cached(bridge) == {first, second, fourth}
    assert not any((bridge.cache.root / "evicted").iterdir())  # deleted, not only moved

    # Undeployed and done: the first is now the least recently used model a new one pushes out.
    bridge.cache.materializing.clear()
    assert await bridge.cache.evict_unused({}, bridge.cache.deploys_done) == []
    fifth = await materialized(bridge, "m4")
    assert await bridge.cache.evict_unused({}, bridge.cache.deploys_done) == [first]
    assert cached(bridge) == {second, fourth, fifth}


async def test_nothing_is_evicted_from_a_serve_snapshot_older_than_a_finished_deploy(bridge) -> None:
    bridge.cache.max_bytes = 0
    digest = await materialized(bridge, "m")
    seen = bridge.cache.deploys_done
    bridge.cache.deploys_done += 1  # a deploy finished after Serve was asked: its application may be missing

    assert await bridge.cache.evict_unused({}, seen) == []
    assert cached(bridge) == {digest}


async def test_with_a_zero_bound_a_model_is_freed_once_undeployed_and_fetched_again_later(bridge) -> None:
    bridge.cache.max_bytes = 0
    digest = await materialized(bridge, "m")
    owned = {ModelKey("ns", "m"): ("modelreg.ns.m", running(digest))}

    assert await bridge.cache.evict_unused(owned, bridge.cache.deploys_done) == []  # deployed: kept
    assert await bridge.cache.evict_unused({}, bridge.cache.deploys_done) == [digest]  # undeployed: freed
    assert cached(bridge) == set()

    archive = Path(bridge.settings.archive_root) / "m.tar.gz"
    files = await prepare_model_files(bridge.storage, archive.as_uri(), digest, bridge.cache.root)
    assert (files / "model.onnx").stat().st_size == MODEL_BYTES
