"""The worker's cluster watch on in-memory fakes: two workers checking the same lost cluster publish the
same events (the copies are stale), fail a model over once, and flag the cluster once."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from modelreg.services.worker.clusters import ClusterWatch
from modelreg.shared.adapters.mongo import PlacedModel
from modelreg.shared.contracts import (
    ClusterHealthReport,
    ClusterResources,
    CommandType,
    DeploymentCommand,
    DeploymentEvent,
    EventType,
    ModelKey,
)
from modelreg.shared.deployment_rules import ObservedDeployment, apply_event, apply_events
from modelreg.shared.documents import ClusterRecord
from modelreg.shared.placement import Requirements
from modelreg.shared.settings import Settings
from tests.factories import event

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GIB = 1024**3
KEY = ModelKey("ns", "m1")
STAY = ModelKey("ns", "m2")


class FakeClusterStore:
    def __init__(self, records: list[ClusterRecord], models: dict[ModelKey, PlacedModel]) -> None:
        self.records = {r.name: r for r in records}
        self.models = models
        self.flagged: list[str] = []

    async def all(self) -> list[ClusterRecord]:
        return list(self.records.values())

    async def apply_report(self, report, seen_at) -> bool:
        record = self.records[report.cluster]
        update = {"last_seen_at": seen_at, "healthy": report.serve_up}
        if report.serve_up:
            update["last_up_at"] = seen_at
        self.records[report.cluster] = record.model_copy(update=update)
        return True

    async def mark_reachable(self, name: str) -> bool:
        record = self.records[name]
        if not record.unreachable:
            return False
        self.records[name] = record.model_copy(update={"unreachable": False})
        return True

    async def mark_unreachable(self, name: str, last_seen_at: datetime) -> bool:
        record = self.records[name]
        if record.unreachable or record.last_seen_at != last_seen_at:
            return False
        self.records[name] = record.model_copy(update={"unreachable": True, "healthy": False})
        self.flagged.append(name)
        return True

    async def models_living_on(self, name: str) -> list[PlacedModel]:
        return [m for m in self.models.values() if (m.observed.cluster or "local") == name]

    async def load_placements(self, keys: Iterable[ModelKey]) -> dict[ModelKey, ObservedDeployment]:
        return {k: self.models[k].observed for k in keys if k in self.models}

    async def retarget(self, key: ModelKey, from_cluster: str | None, to_cluster: str, now: datetime) -> bool:
        placed = self.models[key]
        if placed.observed.desired_cluster != from_cluster:
            return False
        observed = msgspec.structs.replace(placed.observed, desired_cluster=to_cluster)
        self.models[key] = msgspec.structs.replace(placed, observed=observed)
        return True


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, DeploymentEvent | DeploymentCommand]] = []

    async def publish(self, topic: str, message: DeploymentEvent | DeploymentCommand) -> None:
        self.sent.append((topic, message))


def cluster(name: str, last_seen_at: datetime) -> ClusterRecord:
    free = ClusterResources(cpu_total=4, cpu_free=4, memory_total_bytes=16 * GIB, memory_free_bytes=16 * GIB)
    return ClusterRecord(
        name=name,
        ray_address=f"{name}:6379",
        serve_url=f"http://{name}:8000",
        healthy=True,
        last_seen_at=last_seen_at,
        resources=msgspec.to_builtins(free),
    )


def deployed_on_a(failover: bool) -> PlacedModel:
    observed, _ = apply_events(
        ObservedDeployment(desired_cluster="a"), [event(EventType.READY, 7, model_id="x", cluster="a")]
    )
    return PlacedModel(key=KEY, observed=observed, failover=failover, needs=Requirements(memory=GIB))


async def test_two_workers_noticing_the_same_loss_do_not_fight() -> None:
    now = T0 + timedelta(seconds=100)
    settings = Settings(cluster_unreachable_after_s=30)
    store = FakeClusterStore(
        [cluster("a", T0), cluster("b", now)],
        {KEY: deployed_on_a(failover=True), STAY: msgspec.structs.replace(deployed_on_a(False), key=STAY)},
    )
    first, second = Recorder(), Recorder()
    assert await ClusterWatch(settings, store, first, clock=lambda: now).check() == ["a"]
    assert await ClusterWatch(settings, store, second, clock=lambda: now).check() == ["a"]

    events = [m for _, m in first.sent if isinstance(m, DeploymentEvent)]
    assert {(e.model_id, e.message, e.sequence, e.cluster) for e in events} == {
        ("m1", "cluster a unreachable", 8, "a"),
        ("m2", "cluster a unreachable", 8, "a"),
    }
    again = [m for _, m in second.sent if isinstance(m, DeploymentEvent)]
    assert [e.event_id for e in again] == [e.event_id for e in events], "the second copy is the same event"
    for copy in again:
        applied = apply_event(store.models[copy.key].observed, copy)
        assert applied is not None and apply_event(applied, copy) is None, "applied once, then stale"

    deploys = [m for _, m in first.sent + second.sent if isinstance(m, DeploymentCommand)]
    assert [(c.command_type, c.model_id, c.cluster) for c in deploys] == [(CommandType.DEPLOY, "m1", "b")]
    assert store.models[KEY].observed.desired_cluster == "b"
    assert store.models[STAY].observed.desired_cluster == "a", "no failover asked"
    assert store.flagged == ["a"]


class CrashingOnDeploy(Recorder):
    """A worker that dies after its failover retarget was stored, before the deploy went out."""

    async def publish(self, topic: str, message: DeploymentEvent | DeploymentCommand) -> None:
        if isinstance(message, DeploymentCommand) and message.command_type is CommandType.DEPLOY:
            raise ConnectionError("worker killed")
        await super().publish(topic, message)


async def test_a_failover_cut_short_after_its_retarget_sends_the_deploy_at_the_next_check() -> None:
    now = T0 + timedelta(seconds=100)
    settings = Settings(cluster_unreachable_after_s=30)
    store = FakeClusterStore([cluster("a", T0), cluster("b", now)], {KEY: deployed_on_a(failover=True)})

    crashed = CrashingOnDeploy()
    try:
        await ClusterWatch(settings, store, crashed, clock=lambda: now).check()
    except ConnectionError:
        pass
    assert store.models[KEY].observed.desired_cluster == "b" and store.flagged == []

    recorder = Recorder()
    assert await ClusterWatch(settings, store, recorder, clock=lambda: now).check() == ["a"]
    deploys = [m for _, m in recorder.sent if isinstance(m, DeploymentCommand)]
    assert [(c.command_type, c.model_id, c.cluster) for c in deploys] == [(CommandType.DEPLOY, "m1", "b")]
    assert store.flagged == ["a"]

    later = Recorder()  # the loss handled to the end: no deploy again
    await ClusterWatch(settings, store, later, clock=lambda: now).check()
    assert not [m for _, m in later.sent if isinstance(m, DeploymentCommand)]


async def test_a_cluster_within_the_timeout_or_never_seen_is_not_lost() -> None:
    now = T0 + timedelta(seconds=10)
    never = cluster("n", T0).model_copy(update={"last_seen_at": None})
    store = FakeClusterStore([cluster("a", T0), never], {KEY: deployed_on_a(failover=True)})
    recorder = Recorder()
    assert await ClusterWatch(Settings(), store, recorder, clock=lambda: now).check() == []
    assert recorder.sent == [] and store.flagged == []


async def test_a_cluster_reported_not_serving_is_lost_though_its_reports_keep_coming() -> None:
    now = T0 + timedelta(seconds=100)
    settings = Settings(cluster_unreachable_after_s=30)
    down = cluster("a", now).model_copy(update={"healthy": False, "last_up_at": T0})
    store = FakeClusterStore([down, cluster("b", now).model_copy(update={"last_up_at": now})], {})
    store.models[KEY] = deployed_on_a(failover=False)
    recorder = Recorder()

    assert await ClusterWatch(settings, store, recorder, clock=lambda: now).check() == ["a"]

    [(_, lost)] = recorder.sent
    assert isinstance(lost, DeploymentEvent) and lost.message == "cluster a unreachable"
    assert store.flagged == ["a"]


def resyncs(recorder: Recorder) -> list[tuple[str, str | None]]:
    return [
        (m.model_id, m.cluster)
        for _, m in recorder.sent
        if isinstance(m, DeploymentCommand) and m.command_type is CommandType.RESYNC
    ]


async def test_a_lost_cluster_that_reports_serving_again_gets_its_models_resynced() -> None:
    now = T0 + timedelta(seconds=100)
    settings = Settings(cluster_unreachable_after_s=30)
    store = FakeClusterStore([cluster("a", T0)], {KEY: deployed_on_a(failover=False)})
    checker = Recorder()
    assert await ClusterWatch(settings, store, checker, clock=lambda: now).check() == ["a"]
    assert resyncs(checker) == []

    back = Recorder()
    watch = ClusterWatch(settings, store, back, clock=lambda: now)
    report = ClusterHealthReport(
        report_id=uuid.uuid4(), cluster="a", sequence=2, reported_at=now, serve_up=True
    )
    assert await watch.apply_reports([report]) == 1
    # Our "unreachable" event may have landed after the bridge's re-announcement: ask for the truth again.
    assert resyncs(back) == [("m1", "a")]
    again = Recorder()
    await ClusterWatch(settings, store, again, clock=lambda: now).apply_reports([report])
    assert resyncs(again) == [], "only the report that brings the cluster back resyncs"


async def test_a_report_arriving_during_the_loss_check_resyncs_the_models_it_marked() -> None:
    now = T0 + timedelta(seconds=100)
    settings = Settings(cluster_unreachable_after_s=30)
    store = FakeClusterStore([cluster("a", T0)], {KEY: deployed_on_a(failover=False)})
    stale_read = store.all

    async def all_then_a_report_arrives() -> list[ClusterRecord]:
        records = await stale_read()
        store.records["a"] = store.records["a"].model_copy(update={"last_seen_at": now, "last_up_at": now})
        return records

    store.all = all_then_a_report_arrives  # type: ignore[method-assign]
    recorder = Recorder()
    assert await ClusterWatch(settings, store, recorder, clock=lambda: now).check() == ["a"]
    assert store.flagged == [], "the cluster reported in between: not flagged"
    assert resyncs(recorder) == [("m1", "a")], "the unreachable event just sent is corrected by a resync"


async def test_a_model_the_lost_cluster_just_announced_is_not_turned_unhealthy() -> None:
    """The bridge is back and its `ready` applied, its health report (another topic) not yet: the check
    still finds the cluster silent, but sends no `unhealthy` for the model the bridge just announced."""
    now = T0 + timedelta(seconds=100)
    settings = Settings(cluster_unreachable_after_s=30)
    announced, _ = apply_events(
        ObservedDeployment(desired_cluster="a"),
        [event(EventType.READY, 9, model_id="x", cluster="a", occurred_at=now - timedelta(seconds=1))],
    )
    fresh = PlacedModel(key=KEY, observed=announced, failover=False, needs=Requirements(memory=GIB))
    silent = msgspec.structs.replace(deployed_on_a(False), key=STAY)
    store = FakeClusterStore([cluster("a", T0)], {KEY: fresh, STAY: silent})
    recorder = Recorder()
    assert await ClusterWatch(settings, store, recorder, clock=lambda: now).check() == ["a"]
    events = [m for _, m in recorder.sent if isinstance(m, DeploymentEvent)]
    assert [(e.model_id, e.event_type) for e in events] == [("m2", EventType.UNHEALTHY)]
