"""The pure decision rules: every event type's effect, the sequence guard, folding and the status machine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg.shared.contracts import DeploymentStatus, EventType, ModelDeploymentInfo, ModelKey
from modelreg.shared.deployment_rules import (
    OBSERVED_ON_SERVE,
    DesiredState,
    ObservedChange,
    ObservedDeployment,
    RequestOutcome,
    apply_event,
    apply_events,
    decide_request,
    effective_status,
    group_by_model,
    is_newer,
    is_observed_on_serve,
    lost_writes,
    status_for_legacy,
)
from tests.factories import BASE_TIME, event

NEVER = ObservedDeployment()
READY_INFO = ModelDeploymentInfo(
    endpoint="http://old/endpoint",
    base_image="img:1",
    ray_cluster_url="ray://old:10001",
    ray_deployment_name="old-app",
    deployed_at=BASE_TIME,
)
DEPLOYED = ObservedDeployment(
    deployed=True, deployment_info=READY_INFO, status=DeploymentStatus.DEPLOYED, last_event_sequence=10
)


def test_ready_deploys_with_full_info_and_deployed_at_from_the_event() -> None:
    evt = event(
        "deployment.ready",
        1,
        endpoint="http://e",
        base_image="img",
        ray_cluster_url="ray://c",
        ray_deployment_name="app",
    )
    after = apply_event(NEVER, evt)
    assert after.deployed is True and after.status is DeploymentStatus.DEPLOYED
    assert after.deployment_info == ModelDeploymentInfo(
        endpoint="http://e",
        base_image="img",
        ray_cluster_url="ray://c",
        ray_deployment_name="app",
        deployed_at=evt.occurred_at,
    )
    assert after.last_event_sequence == 1 and after.observed_at == evt.occurred_at


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        (EventType.STARTED, DeploymentStatus.PENDING),
        (EventType.UNHEALTHY, DeploymentStatus.UNHEALTHY),
        (EventType.DELETING, DeploymentStatus.DELETING),
    ],
)
def test_transitional_events_undeploy_but_keep_and_fill_info(event_type, status) -> None:
    after = apply_event(DEPLOYED, event(event_type, 11, endpoint="http://new/endpoint"))
    assert after.deployed is False and after.status is status
    assert after.deployment_info == ModelDeploymentInfo(
        endpoint="http://new/endpoint",
        base_image=READY_INFO.base_image,
        ray_cluster_url=READY_INFO.ray_cluster_url,
        ray_deployment_name=READY_INFO.ray_deployment_name,
        deployed_at=READY_INFO.deployed_at,
    )


def test_started_without_endpoint_on_a_fresh_model_has_no_info() -> None:
    after = apply_event(NEVER, event("deployment.started", 1, ray_deployment_name="app"))
    assert after.deployment_info is None and after.status is DeploymentStatus.PENDING


def test_started_with_endpoint_and_image_fills_info_without_deployed_at() -> None:
    after = apply_event(NEVER, event("deployment.started", 1, endpoint="http://e", base_image="img"))
    assert after.deployment_info == ModelDeploymentInfo(endpoint="http://e", base_image="img")


@pytest.mark.parametrize(
    ("event_type", "status"),
    [(EventType.FAILED, DeploymentStatus.FAILED), (EventType.DELETED, DeploymentStatus.NOT_DEPLOYED)],
)
def test_failed_and_deleted_clear_the_deployment(event_type, status) -> None:
    after = apply_event(DEPLOYED, event(event_type, 11, message="why"))
    assert after.deployed is False and after.deployment_info is None
    assert after.status is status and after.message == "why"


def test_sequence_guard() -> None:
    assert is_newer(0, None)
    assert is_newer(11, 10)
    assert not is_newer(10, 10)
    assert not is_newer(9, 10)
    assert apply_event(DEPLOYED, event("deployment.failed", 10)) is None  # duplicate sequence
    assert apply_event(DEPLOYED, event("deployment.failed", 3)) is None  # older


def test_apply_events_folds_in_sequence_order_and_skips_stale() -> None:
    events = [event("deployment.ready", 13), event("deployment.started", 12), event("deployment.failed", 9)]
    final, applied = apply_events(DEPLOYED, events)
    assert [e.sequence for e in applied] == [12, 13]
    assert final.status is DeploymentStatus.DEPLOYED and final.last_event_sequence == 13


def test_group_by_model_keeps_each_models_events_together() -> None:
    a1, a2, b1 = (
        event("deployment.started", 1, model_id="a"),
        event("deployment.ready", 2, model_id="a"),
        event("deployment.started", 1, model_id="b"),
    )
    grouped = group_by_model([a1, b1, a2])
    assert grouped == {a1.key: [a1, a2], b1.key: [b1]}


def test_legacy_documents_status() -> None:
    assert status_for_legacy(True) is DeploymentStatus.DEPLOYED
    assert status_for_legacy(False) is DeploymentStatus.NOT_DEPLOYED


def test_effective_status_reports_pending_until_a_newer_observation() -> None:
    requested = BASE_TIME + timedelta(minutes=5)
    never = ObservedDeployment(observed_at=BASE_TIME)
    assert effective_status(never) is DeploymentStatus.NOT_DEPLOYED
    assert effective_status(never, DesiredState.DEPLOYED, requested) is DeploymentStatus.PENDING
    failed_after = ObservedDeployment(
        status=DeploymentStatus.FAILED, observed_at=requested + timedelta(seconds=1)
    )
    assert effective_status(failed_after, DesiredState.DEPLOYED, requested) is DeploymentStatus.FAILED
    deployed_before = ObservedDeployment(
        deployed=True, status=DeploymentStatus.DEPLOYED, observed_at=BASE_TIME
    )
    assert effective_status(deployed_before, DesiredState.DEPLOYED, requested) is DeploymentStatus.DEPLOYED
    assert (
        effective_status(deployed_before, DesiredState.NOT_DEPLOYED, requested) is DeploymentStatus.DELETING
    )
    assert effective_status(never, DesiredState.NOT_DEPLOYED, requested) is DeploymentStatus.NOT_DEPLOYED


# Property: however events are shuffled, duplicated and split across batches, each model ends where its
# highest-sequence event puts it. (Only the kept/filled info of transitional events depends on what was
# applied before, which is why info is checked where the latest event alone decides it.)
MODEL_IDS = ["m1", "m2", "m3"]
event_types = st.sampled_from(list(EventType))


@st.composite
def event_streams(draw):
    events = []
    for model_id in MODEL_IDS:
        sequences = draw(st.lists(st.integers(0, 1000), min_size=0, max_size=8, unique=True))
        for seq in sequences:
            events.append(event(draw(event_types), seq, model_id=model_id, message=f"{model_id}-{seq}"))
    return events


@settings(max_examples=300, deadline=None)
@given(stream=event_streams(), data=st.data())
def test_any_delivery_order_with_duplicates_and_batches_converges(stream, data) -> None:
    delivered = stream + data.draw(st.lists(st.sampled_from(stream), max_size=10)) if stream else []
    delivered = data.draw(st.permutations(delivered))
    cut_points = sorted(data.draw(st.lists(st.integers(0, len(delivered)), max_size=4)))
    batches = [delivered[i:j] for i, j in zip([0, *cut_points], [*cut_points, len(delivered)], strict=True)]

    state = {model_id: NEVER for model_id in MODEL_IDS}
    for batch in batches:
        for key, model_events in group_by_model(batch).items():
            state[key.model_id], _ = apply_events(state[key.model_id], model_events)

    for model_id in MODEL_IDS:
        own = [e for e in stream if e.model_id == model_id]
        if not own:
            assert state[model_id] == NEVER
            continue
        latest = max(own, key=lambda e: e.sequence)
        final = state[model_id]
        assert final.last_event_sequence == latest.sequence
        assert final.status is apply_event(NEVER, latest).status
        assert final.deployed is (latest.event_type is EventType.READY)
        assert final.message == latest.message
        if latest.event_type in (EventType.FAILED, EventType.DELETED):
            assert final.deployment_info is None
        if latest.event_type is EventType.READY:
            assert final.deployment_info.endpoint == latest.endpoint
            assert final.deployment_info.deployed_at == latest.occurred_at


# --- deploy / undeploy requests

REQUEST_TABLE = {
    # (current status, requested) → outcome
    (DeploymentStatus.NOT_DEPLOYED, DesiredState.DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.PENDING, DesiredState.DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.DEPLOYED, DesiredState.DEPLOYED): RequestOutcome.UNCHANGED,
    (DeploymentStatus.UNHEALTHY, DesiredState.DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.FAILED, DesiredState.DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.DELETING, DesiredState.DEPLOYED): RequestOutcome.REFUSED,
    (DeploymentStatus.NOT_DEPLOYED, DesiredState.NOT_DEPLOYED): RequestOutcome.UNCHANGED,
    (DeploymentStatus.PENDING, DesiredState.NOT_DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.DEPLOYED, DesiredState.NOT_DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.UNHEALTHY, DesiredState.NOT_DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.FAILED, DesiredState.NOT_DEPLOYED): RequestOutcome.PUBLISH,
    (DeploymentStatus.DELETING, DesiredState.NOT_DEPLOYED): RequestOutcome.PUBLISH,
}


def test_the_request_table_covers_every_status_and_request() -> None:
    assert set(REQUEST_TABLE) == {(s, d) for s in DeploymentStatus for d in DesiredState}


@pytest.mark.parametrize(("current", "requested"), list(REQUEST_TABLE))
def test_decide_request(current, requested) -> None:
    decision = decide_request(current, requested)
    assert decision.outcome is REQUEST_TABLE[(current, requested)]
    assert (decision.reason is not None) is (decision.outcome is RequestOutcome.REFUSED)


@given(st.sampled_from(list(DeploymentStatus)), st.sampled_from(list(DesiredState)))
def test_a_published_request_is_reported_as_its_transition(current, requested) -> None:
    """Right after a published request (nothing newer observed), the model reports the requested direction."""
    decision = decide_request(current, requested)
    if decision.outcome is not RequestOutcome.PUBLISH:
        return
    before = ObservedDeployment(
        deployed=current is DeploymentStatus.DEPLOYED, status=current, observed_at=BASE_TIME
    )
    reported = effective_status(before, requested, BASE_TIME + timedelta(seconds=1))
    if requested is DesiredState.DEPLOYED:
        assert reported is DeploymentStatus.PENDING
    else:
        assert reported in (DeploymentStatus.DELETING, DeploymentStatus.NOT_DEPLOYED)
        assert (reported is DeploymentStatus.NOT_DEPLOYED) is (current is DeploymentStatus.NOT_DEPLOYED)


@pytest.mark.parametrize("status", list(DeploymentStatus))
@pytest.mark.parametrize("deployed", [True, False])
def test_observed_on_serve_means_an_application_exists_or_is_being_made_or_removed(status, deployed) -> None:
    observed = ObservedDeployment(deployed=deployed, status=status)
    expected = deployed or status in {"pending", "deployed", "unhealthy", "deleting"}
    assert is_observed_on_serve(observed) is expected
    assert (status in OBSERVED_ON_SERVE) is (status in {"pending", "deployed", "unhealthy", "deleting"})


def test_a_write_is_lost_when_the_model_carries_another_sequence_than_the_one_written() -> None:
    a, b, gone = ModelKey("ns", "a"), ModelKey("ns", "b"), ModelKey("ns", "gone")
    started = event("deployment.started", 5)

    def change(key: ModelKey) -> ObservedChange:
        return ObservedChange(key, NEVER, apply_event(NEVER, started), [started])

    changes = [change(a), change(b), change(gone)]
    # a took; b was moved by another writer; gone was deleted: nothing left to write, no conflict.
    assert lost_writes(changes, {a: 5, b: 7}) == {b}
    assert lost_writes(changes, {a: 5, b: 5}) == set()
    assert lost_writes(changes, {a: None, b: 5}) == {a}
