"""The pure rules of aliases, tombstones and the inference route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.shared.alias_rules import (
    AliasHistoryKind,
    AliasState,
    NoPreviousTarget,
    aliases_by_model,
    history_notes,
    move,
    rollback,
)
from modelreg.shared.contracts import DeploymentStatus, EventType, ModelFormat
from modelreg.shared.documents import DeploymentInfoFields, ModelDetails
from modelreg.shared.inference_rules import (
    BUFFERED_ANSWER_MAX_BYTES,
    Upstream,
    buffer_whole,
    prediction_endpoint,
    response_headers,
    upstream_outcome,
)
from modelreg.shared.tombstone_rules import is_acknowledged, tombstone_expiry

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = st.sampled_from(["m1", "m2", "m3", "m4"])
STEPS = st.lists(st.one_of(TARGETS, st.just("rollback")), min_size=1, max_size=30)


def moved(current: AliasState | None, model_id: str, step: int = 0) -> AliasState:
    return move(
        current,
        namespace_id="ns",
        name="resnet",
        alias="production",
        model_id=model_id,
        now=T0 + timedelta(seconds=step),
        actor="abc",
    )


@given(STEPS)
def test_any_sequence_of_moves_and_rollbacks_keeps_the_pointer_and_its_rollback_target(steps) -> None:
    state: AliasState | None = None
    # The model: the distinct targets in order; a rollback swaps the last two.
    targets: list[str] = []
    for number, step in enumerate(steps):
        before = state
        if step == "rollback":
            if state is None:
                continue
            if state.previous_model_id is None:
                with pytest.raises(NoPreviousTarget):
                    rollback(state, now=T0, actor=None)
                continue
            state = rollback(state, now=T0 + timedelta(seconds=number), actor="abc")
            targets[-1], targets[-2] = targets[-2], targets[-1]
        else:
            state = moved(state, step, number)
            if not targets or targets[-1] != step:
                targets.append(step)
        assert state.model_id == targets[-1]
        assert state.previous_model_id == (targets[-2] if len(targets) > 1 else None)
        assert state.previous_model_id != state.model_id
        assert state.revision == (before.revision + 1 if before else 1)
        notes = history_notes(before, state)
        if before is None or before.model_id != state.model_id:
            assert {(n.model_id, n.kind) for n in notes} == {
                (state.model_id, AliasHistoryKind.ASSIGNED),
                *([(before.model_id, AliasHistoryKind.UNASSIGNED)] if before else []),
            }
        else:
            assert notes == []


def test_two_rollbacks_come_back_to_where_they_started() -> None:
    state = moved(moved(None, "m1"), "m2")
    twice = rollback(rollback(state, now=T0, actor=None), now=T0, actor=None)
    assert (twice.model_id, twice.previous_model_id) == (state.model_id, state.previous_model_id)


def test_removal_notes_and_aliases_by_model() -> None:
    state = moved(None, "m1")
    [note] = history_notes(state, None)
    assert (note.model_id, note.kind, note.message) == (
        "m1",
        AliasHistoryKind.UNASSIGNED,
        "alias production removed",
    )
    other = moved(None, "m1").__class__(
        namespace_id="ns", name="resnet", alias="canary", model_id="m1", updated_at=T0
    )
    assert aliases_by_model([state, other, moved(None, "m2")]) == {
        "m1": ["canary", "production"],
        "m2": ["production"],
    }


@given(st.sampled_from(list(EventType)), st.floats(min_value=-1e6, max_value=1e6))
def test_only_undeploy_events_within_the_retention_are_acknowledged(event_type, offset_s) -> None:
    expires = tombstone_expiry(T0, 3600)
    assert expires == T0 + timedelta(hours=1)
    now = T0 + timedelta(seconds=offset_s)
    expected = event_type in (EventType.DELETING, EventType.DELETED) and now < expires
    assert is_acknowledged(event_type, expires, now) is expected
    assert is_acknowledged(event_type, None, now) is False


def details(**fields) -> ModelDetails:
    return ModelDetails(
        model_id="m1",
        namespace_id="ns",
        name="resnet",
        version="1",
        model_archive_url="file:///x",
        model_format=ModelFormat.ONNX,
        model_hash="0" * 64,
        **fields,
    )


def test_a_prediction_goes_to_the_endpoint_only_while_deployed() -> None:
    info = DeploymentInfoFields(endpoint="http://serve:8001/ns/m1", base_image="img")
    assert prediction_endpoint(details(deployed=True, deployment_info=info)) == "http://serve:8001/ns/m1"
    assert prediction_endpoint(details(deployed=False, deployment_info=None)) is None
    for status in (DeploymentStatus.FAILED, DeploymentStatus.DELETING):
        assert (
            prediction_endpoint(details(deployed=True, deployment_info=info, deployment_status=status))
            is None
        )
    unhealthy = details(deployed=True, deployment_info=info, deployment_status=DeploymentStatus.UNHEALTHY)
    assert prediction_endpoint(unhealthy) == info.endpoint  # it may still answer; its answer says


def test_endpoint_statuses_and_headers() -> None:
    assert [upstream_outcome(s) for s in (200, 204, 400, 404, 422, 500, 503)] == [Upstream.PASS] * 5 + [
        Upstream.FAILED
    ] * 2
    kept = response_headers(
        [
            ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"),
            ("X-Model", "m1"),
            ("Connection", "x"),
        ]
    )
    assert kept == {"Content-Type": "application/json", "X-Model": "m1"}


def test_short_answers_of_known_length_are_sent_whole_others_streamed() -> None:
    assert buffer_whole([("Content-Length", "120")]) is True
    assert buffer_whole([("content-length", str(BUFFERED_ANSWER_MAX_BYTES))]) is True
    assert buffer_whole([("content-length", str(BUFFERED_ANSWER_MAX_BYTES + 1))]) is False
    assert buffer_whole([("transfer-encoding", "chunked")]) is False
    assert buffer_whole([("content-length", "1"), ("content-length", "2")]) is False
    assert buffer_whole([("content-length", "-1")]) is False
