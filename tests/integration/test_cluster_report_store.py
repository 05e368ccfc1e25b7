"""Reports of a cluster registered by the operator's CLI are stored one after the other (the newest wins)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from modelreg.services.cluster_admin import add_cluster, validated
from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.mongo import ClusterStore
from modelreg.shared.contracts import ClusterHealthReport, ClusterResources


def report(sequence: int, serve_up: bool = True) -> ClusterHealthReport:
    return ClusterHealthReport(
        report_id=uuid.uuid4(),
        cluster="eu",
        sequence=sequence,
        reported_at=datetime.now(UTC),
        serve_up=serve_up,
        resources=ClusterResources(cpu_total=1, cpu_free=1, memory_total_bytes=1, memory_free_bytes=1),
        applications=[],
    )


async def test_reports_of_a_cluster_added_by_the_cli_are_stored_in_sequence(settings, db) -> None:
    await add_cluster(settings, validated("eu", "http://eu:8265", "http://eu:8000", {"region": "eu"}))
    client = await mongo.connect(settings)  # the CLI's helper closed its own client
    store = ClusterStore()
    t0 = datetime.now(UTC)
    base = 1_764_400_000_000_000
    assert await store.apply_report(report(base), t0)
    assert await store.apply_report(report(base + 1_000_000), t0 + timedelta(seconds=1))
    assert not await store.apply_report(report(base + 500_000), t0 + timedelta(seconds=2))
    assert await store.apply_report(report(base + 2_000_000, serve_up=False), t0 + timedelta(seconds=3))
    stored = await db.ray_clusters.find_one({"name": "eu"})
    assert stored["last_report_sequence"] == base + 2_000_000 and stored["healthy"] is False
    assert stored["last_up_at"] is not None and stored["last_seen_at"] > stored["last_up_at"]
    await client.close()
