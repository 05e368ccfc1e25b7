"""What a committed change means (shared/change_rules.py) and the document it committed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.shared.adapters.mongo.change_stream import document_after, registry_change
from modelreg.shared.change_rules import ChangeKind, summarize
from modelreg.shared.changes import ChangedCollection, ChangeOperation, RegistryChange

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def model(**fields: Any) -> dict[str, Any]:
    return {"_id": "x1", "namespace_id": "ns", "model_id": "m", **fields}


def change(
    operation: ChangeOperation,
    document: dict[str, Any] | None,
    updated: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    collection: ChangedCollection = ChangedCollection.MODELS,
) -> RegistryChange:
    return RegistryChange(
        token="t",
        collection=collection,
        operation=operation,
        document_id="x1",
        namespace_id="ns",
        document=document,
        committed_at=NOW,
        document_before=before,
        updated_fields=updated or {},
    )


def entry(sequence: int, event_type: str = "deployment.ready", **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e{sequence}", "event_type": event_type, "sequence": sequence, **fields}


def test_inserts_and_deletes() -> None:
    assert summarize(change(ChangeOperation.INSERT, model())).kind == ChangeKind.MODEL_CREATED
    deleted = summarize(change(ChangeOperation.DELETE, None, before=model()))
    assert (deleted.kind, deleted.namespace_id, deleted.model_id) == (ChangeKind.MODEL_DELETED, "ns", "m")
    assert summarize(change(ChangeOperation.DELETE, None)) is None  # no pre-image: unknown model


def test_the_worker_write_is_a_deployment_change_described_by_its_history_entry() -> None:
    history = [entry(1, "deployment.started"), entry(2, endpoint="http://e", message="up")]
    document = model(deployment_status="deployed", last_event_sequence=2, deployment_history=history)
    summary = summarize(
        change(
            ChangeOperation.UPDATE,
            document,
            {"last_event_sequence": 2, "deployment_status": "deployed", "deployment_history": history},
        )
    )
    assert summary.kind == ChangeKind.DEPLOYMENT_CHANGED
    assert (summary.event_type, summary.sequence, summary.endpoint, summary.message) == (
        "deployment.ready",
        2,
        "http://e",
        "up",
    )


def test_a_history_entry_appended_by_index_is_found_too() -> None:
    summary = summarize(
        change(
            ChangeOperation.UPDATE,
            model(),
            {"last_event_sequence": 7, "deployment_history.3": entry(7, "deployment.failed", message="oom")},
        )
    )
    assert (summary.event_type, summary.sequence, summary.message) == ("deployment.failed", 7, "oom")


def test_requests_and_other_updates() -> None:
    deploy = summarize(change(ChangeOperation.UPDATE, model(), {"desired_state": "deployed"}))
    undeploy = summarize(change(ChangeOperation.UPDATE, model(), {"desired_state": "not_deployed"}))
    cleared = summarize(change(ChangeOperation.UPDATE, model(), {"desired_state": None}))
    assert (deploy.kind, undeploy.kind) == (ChangeKind.DEPLOY_REQUESTED, ChangeKind.UNDEPLOY_REQUESTED)
    assert cleared.kind == ChangeKind.MODEL_UPDATED
    assert summarize(change(ChangeOperation.UPDATE, model(), {"name": "x"})).kind == ChangeKind.MODEL_UPDATED


def test_a_request_repeating_the_stored_desired_state_shows_only_as_its_desired_at() -> None:
    # The database leaves a field set to its current value out of the update's fields.
    again = summarize(
        change(
            ChangeOperation.UPDATE,
            model(desired_state="deployed", desired_at=NOW, desired_by="abc123"),
            {"desired_at": NOW, "updated_at": NOW},
        )
    )
    assert (again.kind, again.requested_by) == (ChangeKind.DEPLOY_REQUESTED, "abc123")
    never = summarize(change(ChangeOperation.UPDATE, model(desired_at=NOW), {"desired_at": NOW}))
    assert never.kind == ChangeKind.MODEL_UPDATED


def test_requested_by_is_the_key_prefix_the_request_stored_with_its_desired_state() -> None:
    asked = {"desired_state": "deployed", "desired_by": "abc123"}
    assert summarize(change(ChangeOperation.UPDATE, model(**asked), asked)).requested_by == "abc123"
    # From the CLI: the write clears it, whatever an older request stored.
    cli = {"desired_state": "not_deployed", "desired_by": None}
    assert summarize(change(ChangeOperation.UPDATE, model(**cli), cli)).requested_by is None


@pytest.mark.parametrize(
    ("event_type", "desired_state", "expected"),
    [
        ("deployment.started", "deployed", "abc123"),
        ("deployment.ready", "deployed", "abc123"),
        ("deployment.deleted", "not_deployed", "abc123"),
        ("deployment.deleted", "deployed", None),  # goes the other way
        ("deployment.unhealthy", "deployed", None),  # no request explains it
    ],
)
def test_a_deployment_change_names_the_stored_request_when_it_goes_its_way(
    event_type: str, desired_state: str, expected: str | None
) -> None:
    document = model(desired_state=desired_state, desired_by="abc123")
    updated = {"last_event_sequence": 3, "deployment_history.0": entry(3, event_type)}
    assert summarize(change(ChangeOperation.UPDATE, document, updated)).requested_by == expected


def test_other_collections_are_not_model_changes() -> None:
    key = change(ChangeOperation.INSERT, {"_id": "k", "prefix": "p"}, collection=ChangedCollection.API_KEYS)
    assert summarize(key) is None


def test_a_change_stream_event_becomes_a_registry_change_with_the_committed_document() -> None:
    event = {
        "_id": {"_data": "8200"},
        "operationType": "update",
        "ns": {"db": "d", "coll": "custom_models"},
        "documentKey": {"_id": "x1"},
        "wallTime": NOW,
        # A looked-up document already shows a later change; the pre-image plus the update is exact.
        "fullDocument": model(deployment_status="failed"),
        "fullDocumentBeforeChange": model(deployment_status="pending", deployment_history=[entry(1)]),
        "updateDescription": {
            "updatedFields": {"deployment_status": "deployed", "deployment_history.1": entry(2)},
            "removedFields": [],
            "truncatedArrays": [],
        },
    }
    converted = registry_change(event)
    assert converted is not None
    assert converted.token == "8200" and converted.namespace_id == "ns"
    assert converted.document["deployment_status"] == "deployed"
    assert [e["sequence"] for e in converted.document["deployment_history"]] == [1, 2]
    assert registry_change({**event, "operationType": "drop"}) is None
    assert registry_change({**event, "ns": {"db": "d", "coll": "webhooks"}}) is None


def test_document_after_applies_removals_truncations_and_nested_sets() -> None:
    before = {"a": 1, "b": {"c": 2, "d": 3}, "h": [1, 2, 3, 4]}
    after = document_after(
        before,
        {
            "updatedFields": {"b.c": 5, "e.f": 6, "h.2": 9},
            "removedFields": ["a"],
            "truncatedArrays": [{"field": "h", "newSize": 3}],
        },
    )
    assert after == {"b": {"c": 5, "d": 3}, "e": {"f": 6}, "h": [1, 2, 9]}
    assert before["a"] == 1 and before["h"] == [1, 2, 3, 4]  # the pre-image is left alone


@given(st.dictionaries(st.text("abc", min_size=1, max_size=3), st.integers(), max_size=5))
def test_top_level_sets_are_a_dict_update(updates: dict[str, int]) -> None:
    before = {"x": 0, "a": 1}
    assert document_after(before, {"updatedFields": updates}) == {**before, **updates}


def test_bson_types_become_plain_python_so_they_encode() -> None:
    import msgspec
    from bson import Int64, ObjectId

    event = {
        "_id": {"_data": "82"},
        "operationType": "insert",
        "ns": {"db": "d", "coll": "custom_models"},
        "documentKey": {"_id": ObjectId()},
        "wallTime": NOW,
        "fullDocument": model(
            _id=ObjectId(), last_event_sequence=Int64(1764412345123456), h=[{"s": Int64(2)}]
        ),
    }
    converted = registry_change(event)
    assert type(converted.document["last_event_sequence"]) is int
    assert type(converted.document["h"][0]["s"]) is int and isinstance(converted.document["_id"], str)
    msgspec.json.encode(converted)
