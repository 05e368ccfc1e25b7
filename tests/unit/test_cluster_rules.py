"""The pure rules of several clusters: state per placement, moves, late events, cluster loss, strays."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg.shared.cluster_health import (
    is_stray,
    is_unreachable,
    last_served_at,
    needs_unreachable_event,
    newest_reports,
    stray_applications,
    unreachable_event,
)
from modelreg.shared.contracts import (
    ClusterHealthReport,
    DeploymentStatus,
    EventType,
    ModelKey,
    ServeApplicationState,
)
from modelreg.shared.deployment_rules import (
    DesiredState,
    ObservedChange,
    ObservedDeployment,
    RequestOutcome,
    apply_event,
    apply_events,
    clusters_to_undeploy,
    decide_request,
)
from tests.factories import BASE_TIME, event

KEY = ModelKey("ns_test", "model_1")


def on(cluster: str | None, *events, desired: str | None = None) -> ObservedDeployment:
    state, _ = apply_events(ObservedDeployment(desired_cluster=desired), events)
    return msgspec.structs.replace(state, desired_cluster=desired)


def deployed_on_a(desired: str | None = "a") -> ObservedDeployment:
    return on(
        "a",
        event(EventType.STARTED, 1, cluster="a"),
        event(EventType.READY, 2, cluster="a", endpoint="http://a:8001/ns_test/model_1"),
        desired=desired,
    )


def test_events_of_the_placement_change_the_model_and_record_the_cluster() -> None:
    state = deployed_on_a()
    assert state.status is DeploymentStatus.DEPLOYED and state.cluster == "a"
    assert state.cluster_sequences == {"a": 2} and state.last_event_sequence == 2


def test_a_move_switches_on_the_targets_ready_and_retires_the_old_placement() -> None:
    moving = msgspec.structs.replace(deployed_on_a(), desired_cluster="b")
    started = apply_event(moving, event(EventType.STARTED, 1, cluster="b"))
    assert started is not None and started.status is DeploymentStatus.DEPLOYED and started.cluster == "a"
    ready_b = event(EventType.READY, 5, cluster="b", endpoint="http://b:8001/ns_test/model_1")
    after = apply_event(started, ready_b)
    assert after is not None and after.cluster == "b" and after.deployed
    assert (
        after.deployment_info is not None
        and after.deployment_info.endpoint == "http://b:8001/ns_test/model_1"
    )
    assert clusters_to_undeploy(ObservedChange(KEY, started, after, [ready_b])) == {"a"}


def test_late_events_of_the_old_placement_only_go_to_the_history() -> None:
    moving = msgspec.structs.replace(deployed_on_a(), desired_cluster="b")
    state, applied = apply_events(
        moving,
        [
            event(EventType.READY, 5, cluster="b", endpoint="http://b:8001/x"),
            event(EventType.DELETING, 6, cluster="a"),
            event(EventType.FAILED, 7, cluster="a", message="gone"),
            event(EventType.DELETED, 8, cluster="a"),
        ],
    )
    assert len(applied) == 4, "every event is recorded"
    assert state.status is DeploymentStatus.DEPLOYED and state.deployed and state.cluster == "b"
    assert state.cluster_sequences == {"a": 8, "b": 5} and state.last_event_sequence == 8


def test_a_ready_of_an_unwanted_cluster_is_history_and_gets_that_cluster_an_undeploy() -> None:
    on_b = msgspec.structs.replace(deployed_on_a(desired="b"), cluster="b")  # failed over to b
    stray = event(EventType.READY, 9, cluster="a", endpoint="http://a:8001/x")
    after = apply_event(on_b, stray)
    assert after is not None and after.cluster == "b"
    assert clusters_to_undeploy(ObservedChange(KEY, on_b, after, [stray])) == {"a"}


def test_each_cluster_has_its_own_guard_and_the_write_token_always_grows() -> None:
    state = deployed_on_a(desired="b")
    lagging = event(EventType.STARTED, 1, cluster="b")  # b's clock is behind a's
    after = apply_event(state, lagging)
    assert after is not None and after.last_event_sequence == 3
    assert apply_event(after, lagging) is None, "a duplicate is stale"
    assert apply_event(after, event(EventType.READY, 1, cluster="a")) is None


def test_events_without_a_cluster_are_the_default_clusters() -> None:
    state, _ = apply_events(ObservedDeployment(), [event(EventType.READY, 3)])
    assert state.cluster == "local" and state.cluster_sequences == {"local": 3}


def test_a_model_stored_before_clusters_keeps_its_one_guard() -> None:
    legacy = ObservedDeployment(deployed=True, status=DeploymentStatus.DEPLOYED, last_event_sequence=10)
    assert apply_event(legacy, event(EventType.DELETED, 9)) is None
    after = apply_event(legacy, event(EventType.DELETED, 11))
    assert after is not None and after.status is DeploymentStatus.NOT_DEPLOYED


def test_deploy_to_another_cluster_is_a_move_even_when_deployed() -> None:
    same = decide_request(DeploymentStatus.DEPLOYED, DesiredState.DEPLOYED, placed_on="a", wanted_on="a")
    moving = decide_request(DeploymentStatus.DEPLOYED, DesiredState.DEPLOYED, placed_on="a", wanted_on="b")
    assert same.outcome is RequestOutcome.UNCHANGED and moving.outcome is RequestOutcome.PUBLISH


@st.composite
def two_cluster_deliveries(draw):
    """A's life (started, ready, then the undeploy after the move) and B's (started, ready), each in its
    own sequence order but any of them delivered in any order, with duplicates."""
    a_base, b_base = draw(st.integers(0, 1000)), draw(st.integers(0, 1000))
    a_events = [
        event(EventType.STARTED, a_base + 1, cluster="a"),
        event(EventType.READY, a_base + 2, cluster="a", endpoint="http://a:8001/x"),
        event(EventType.DELETING, a_base + 3, cluster="a"),
        event(EventType.DELETED, a_base + 4, cluster="a"),
    ]
    b_events = [
        event(EventType.STARTED, b_base + 1, cluster="b"),
        event(EventType.READY, b_base + 2, cluster="b", endpoint="http://b:8001/x"),
    ]
    if draw(st.booleans()):
        a_events.insert(3, event(EventType.FAILED, a_base + 3, cluster="a", message="late failure"))
        a_events[4] = event(EventType.DELETED, a_base + 5, cluster="a")
    stream = a_events + b_events
    delivered = draw(st.permutations(stream + draw(st.lists(st.sampled_from(stream), max_size=4))))
    cuts = sorted(draw(st.lists(st.integers(0, len(delivered)), max_size=3)))
    return [delivered[i:j] for i, j in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]


@settings(max_examples=200, deadline=None)
@given(batches=two_cluster_deliveries())
def test_a_move_ends_on_the_target_whatever_the_order_and_duplicates(batches) -> None:
    state = ObservedDeployment(desired_cluster="b")
    for batch in batches:
        state, _ = apply_events(state, batch)
    assert state.cluster == "b" and state.deployed and state.status is DeploymentStatus.DEPLOYED
    assert state.deployment_info is not None and state.deployment_info.endpoint == "http://b:8001/x"


# --- cluster health -----------------------------------------------------------------------------------


def test_unreachable_only_after_the_timeout_and_never_when_never_seen() -> None:
    assert not is_unreachable(None, 30, BASE_TIME)
    assert not is_unreachable(BASE_TIME, 30, BASE_TIME + timedelta(seconds=30))
    assert is_unreachable(BASE_TIME, 30, BASE_TIME + timedelta(seconds=31))


def test_a_cluster_counts_as_serving_since_its_last_report_that_serve_was_up() -> None:
    later = BASE_TIME + timedelta(seconds=60)
    # Reports keep coming (the bridge is alive) but say the cluster does not answer: lost all the same.
    assert last_served_at(later, BASE_TIME) == BASE_TIME
    assert is_unreachable(last_served_at(later, BASE_TIME), 30, later)
    assert not is_unreachable(last_served_at(later, later), 30, later)
    # Never reported up (or stored before up-times were kept): its last report.
    assert last_served_at(later, None) == later
    assert last_served_at(None, None) is None


@settings(deadline=None)
@given(st.floats(0.1, 1e6), st.floats(0, 2e6))
def test_unreachable_is_exactly_silence_beyond_the_timeout(timeout_s: float, silent_s: float) -> None:
    assert is_unreachable(BASE_TIME, timeout_s, BASE_TIME + timedelta(seconds=silent_s)) == (
        timedelta(seconds=silent_s) > timedelta(seconds=timeout_s)
    )


def test_the_unreachable_event_is_just_newer_than_the_clusters_last_and_the_bridge_wins_after() -> None:
    state = deployed_on_a()
    later = BASE_TIME + timedelta(days=1)
    assert needs_unreachable_event(state, "a", 30, later)
    assert not needs_unreachable_event(state, "b", 30, later)
    lost = unreachable_event(KEY, state, "a", later)
    assert lost.sequence == 3 and lost.message == "cluster a unreachable"
    assert lost == msgspec.structs.replace(unreachable_event(KEY, state, "a", lost.occurred_at))
    after = apply_event(state, lost)
    assert after is not None and after.status is DeploymentStatus.UNHEALTHY
    assert not needs_unreachable_event(after, "a", 30, later)
    assert apply_event(after, lost) is None, "a second worker's copy is stale"
    back = apply_event(after, event(EventType.READY, 4, cluster="a", endpoint="http://a:8001/x"))
    assert back is not None and back.status is DeploymentStatus.DEPLOYED


def test_strays_are_applications_wanted_nowhere() -> None:
    moved = msgspec.structs.replace(deployed_on_a(), cluster="b", desired_cluster="b")
    assert is_stray(moved, "a") and not is_stray(moved, "b")
    moving = msgspec.structs.replace(deployed_on_a(), desired_cluster="b")
    assert not is_stray(moving, "a") and not is_stray(moving, "b")
    assert not is_stray(ObservedDeployment(status=DeploymentStatus.DEPLOYED, deployed=True), "a")
    apps = [
        ServeApplicationState(namespace_id="ns_test", model_id="model_1", status="RUNNING"),
        ServeApplicationState(namespace_id="ns_test", model_id="gone", status="RUNNING"),
        ServeApplicationState(namespace_id="ns_test", model_id="leaving", status="DELETING"),
    ]
    models = {KEY: moved, ModelKey("ns_test", "leaving"): moved}
    assert stray_applications("a", apps, models) == [KEY]


def test_newest_reports_keeps_each_clusters_highest_sequence() -> None:
    def report(cluster: str, sequence: int) -> ClusterHealthReport:
        return ClusterHealthReport(
            report_id=__import__("uuid").uuid4(),
            cluster=cluster,
            sequence=sequence,
            reported_at=BASE_TIME,
            serve_up=True,
        )

    newest = newest_reports([report("a", 2), report("b", 1), report("a", 5), report("a", 3)])
    assert sorted((r.cluster, r.sequence) for r in newest) == [("a", 5), ("b", 1)]


def test_a_model_its_lost_cluster_announced_within_the_timeout_gets_no_unreachable_event() -> None:
    """The bridge came back and announced the model before its health report was applied: telling the
    model unhealthy then would hide that announcement (a deployed model flapping to unhealthy)."""
    state = deployed_on_a()
    announced = state.observed_at
    assert announced is not None
    assert not needs_unreachable_event(state, "a", 30, announced + timedelta(seconds=30))
    assert needs_unreachable_event(state, "a", 30, announced + timedelta(seconds=31))
    # An announcement dated after now (a fast bridge clock) does not keep the model looking served.
    assert needs_unreachable_event(state, "a", 30, announced - timedelta(seconds=1))
