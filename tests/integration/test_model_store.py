"""The MongoDB model store on a real server: the rules' query forms, retired indexes, registrations.

The compare-and-set contract is checked on the real store and on the in-memory fake the unit tests use,
so the fake cannot drift from what MongoDB does.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelreg.services.admin import register_model
from modelreg.shared.adapters.mongo import (
    DuplicateModelError,
    DuplicateModelIdError,
    ModelRegisteredError,
    ModelStore,
    connect,
    observed_from_details,
)
from modelreg.shared.cluster_routing import ObservedPlacement
from modelreg.shared.contracts import DeploymentStatus, ModelKey
from modelreg.shared.deployment_rules import (
    ObservedChange,
    ObservedDeployment,
    apply_event,
    is_observed_on_serve,
)
from modelreg.shared.documents import LIST_INDEXES, RETIRED_INDEXES, ModelDetails
from tests.factories import event, seed_model_document
from tests.fakes import InMemoryObservedStore

NOW = datetime(2026, 2, 1, tzinfo=UTC)
NS = "ns_store"


async def test_models_observed_on_serve_are_those_the_rule_says(db) -> None:
    documents, expected = [], set()
    for deployed in (True, False):
        for status in [None, *DeploymentStatus]:
            model_id = f"{'up' if deployed else 'down'}-{status or 'legacy'}"
            documents.append(
                seed_model_document(
                    NS, model_id, deployed=deployed, deployment_status=None if status is None else str(status)
                )
            )
            stored = ModelDetails.model_validate(documents[-1])
            if is_observed_on_serve(observed_from_details(stored)):
                expected.add(ModelKey(NS, model_id))
    await db.custom_models.insert_many(documents)

    assert set(await ModelStore().keys_observed_on_serve()) == expected
    assert ModelKey(NS, "down-legacy") not in expected and ModelKey(NS, "up-legacy") in expected


async def test_models_observed_on_serve_come_with_their_placement(db) -> None:
    info = {"endpoint": "http://serve:8001/ns/a", "base_image": "img", "ray_cluster_url": "http://eu:8265"}
    await db.custom_models.insert_many(
        [
            seed_model_document(
                NS, "on-eu", deployed=True, deployment_status="deployed", deployment_info=info
            ),
            seed_model_document(
                NS,
                "moving",
                deployed=True,
                deployment_status="deployed",
                deployment_info=info,
                cluster="eu",
                desired_cluster="us",
            ),
            seed_model_document(NS, "pending", deployment_status="pending"),
            seed_model_document(NS, "down", deployed=False, deployment_status="not_deployed"),
        ]
    )

    observed = await ModelStore().observed_on_serve_with_cluster()

    assert observed == {
        ModelKey(NS, "on-eu"): ObservedPlacement(None, "http://eu:8265", None),
        ModelKey(NS, "moving"): ObservedPlacement("eu", "http://eu:8265", "us"),
        ModelKey(NS, "pending"): ObservedPlacement(),
    }
    assert set(observed) == set(await ModelStore().keys_observed_on_serve())


def scanned_stages(plan: dict) -> set[str]:
    stages = {plan["stage"]}
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if child:
            stages |= scanned_stages(child)
    return stages


@pytest.mark.parametrize(
    "guard",
    [{"last_event_sequence": None}, {"last_event_sequence": 7}],
    ids=["first-event", "later-event"],
)
async def test_the_workers_guarded_write_is_answered_from_an_index(db, guard) -> None:
    """What keeps namespace_model_sequence_guard: without it SecantusDB scans the collection per write."""
    await db.custom_models.insert_many([seed_model_document(NS, f"m{i}") for i in range(50)])
    explained = await db.command(
        {"explain": {"find": "custom_models", "filter": {"namespace_id": NS, "model_id": "m7", **guard}}}
    )
    stages = scanned_stages(explained["queryPlanner"]["winningPlan"])
    assert "IXSCAN" in stages and "COLLSCAN" not in stages, explained["queryPlanner"]["winningPlan"]


async def test_a_registration_under_a_taken_id_or_name_and_version_is_refused(db, settings, tmp_path) -> None:
    archive = tmp_path / "archives" / "m.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"x")
    fields = dict(
        namespace_id=NS,
        model_format="onnx",
        archive_url=archive.as_uri(),
        model_hash="0" * 64,
    )
    first = await register_model(settings, model_id="m1", name="n", version="1", **fields)
    assert first.model_id == "m1"

    with pytest.raises(DuplicateModelIdError):
        await register_model(settings, model_id="m1", name="other", version="1", **fields)
    with pytest.raises(DuplicateModelError):
        await register_model(settings, model_id="m2", name="n", version="1", **fields)
    assert issubclass(DuplicateModelIdError, ModelRegisteredError)
    assert issubclass(DuplicateModelError, ModelRegisteredError)
    assert await db.custom_models.count_documents({"namespace_id": NS}) == 1


@pytest.fixture(params=["mongodb", "in_memory"])
async def observed_store(request, db):
    """Both implementations of the applier's store port, holding models a and b with nothing applied."""
    keys = [ModelKey(NS, "a"), ModelKey(NS, "b")]
    if request.param == "in_memory":
        return InMemoryObservedStore({key: ObservedDeployment() for key in keys})
    await db.custom_models.insert_many([seed_model_document(NS, key.model_id) for key in keys])
    return ModelStore()


def started(model_id: str, sequence: int, before: ObservedDeployment) -> ObservedChange:
    evt = event("deployment.started", sequence, namespace_id=NS, model_id=model_id)
    return ObservedChange(ModelKey(NS, model_id), before, apply_event(before, evt), [evt])


async def test_the_store_port_contract(observed_store) -> None:
    a, b, ghost = ModelKey(NS, "a"), ModelKey(NS, "b"), ModelKey(NS, "ghost")
    loaded = await observed_store.load_observed([a, b, ghost])
    assert set(loaded) == {a, b}, "unknown models are left out"
    assert loaded[a].last_event_sequence is None

    # A guard that matches writes; one computed from a state that no longer holds loses and writes nothing.
    assert await observed_store.write_observed([started("a", 1, loaded[a])], NOW) == set()
    lost = await observed_store.write_observed([started("a", 2, loaded[a]), started("b", 1, loaded[b])], NOW)
    assert lost == {a}

    after = await observed_store.load_observed([a, b])
    assert after[a].last_event_sequence == 1 and after[a].status is DeploymentStatus.PENDING
    assert after[b].last_event_sequence == 1
    assert await observed_store.write_observed([], NOW) == set()


async def test_indexes_no_query_uses_are_dropped_when_a_process_connects(db, settings) -> None:
    """An index left by an earlier version costs every write (on SecantusDB, every index is rewritten)."""
    retired = RETIRED_INDEXES["custom_models"]
    for name, direction in zip(retired, (1, -1), strict=True):
        keys = [("namespace_id", 1), ("name", direction), ("version", direction), ("model_id", 1)]
        await db.custom_models.create_index(keys, name=name)

    client = await connect(settings)
    await connect(settings)  # a second process finds them gone already
    names = {index["name"] async for index in await db.custom_models.list_indexes()}
    await client.close()
    assert not set(retired) & names
    assert {index.document["name"] for index in LIST_INDEXES} <= names
