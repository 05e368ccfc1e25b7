"""Property through the real write path: the worker's applier and store on a real MongoDB-protocol server.

For any events of several models, delivered shuffled, duplicated and split across batches, the stored
documents equal the pure rules folded over the same batches, and each model ends where its
highest-sequence event puts it, with every applied event in its history once, in sequence order.
With two clusters (a model asked on one of them, events from both), the stored documents still equal the
rules, each cluster's events apply in their own order, and a model whose asked-for cluster reported
ready last stays deployed there whatever the other cluster says afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelreg.services.worker.applier import EventApplier
from modelreg.shared.adapters.mongo import ModelStore
from modelreg.shared.contracts import DeploymentEvent, EventType, ModelKey
from modelreg.shared.conversions import observed_from_details
from modelreg.shared.deployment_rules import ObservedDeployment, apply_event, apply_events, group_by_model
from modelreg.shared.documents import ModelDetails
from tests.factories import event, seed_model_document

MODEL_IDS = ["p1", "p2", "p3"]
NEVER = ObservedDeployment()


def draw_stream(
    draw: st.DrawFn, namespace: str, **drawn_fields: st.SearchStrategy[Any]
) -> list[DeploymentEvent]:
    """Up to six events of each model at distinct sequences, of any type; `drawn_fields` draws further
    fields of each event."""
    stream = []
    for model_id in MODEL_IDS:
        for sequence in draw(st.lists(st.integers(0, 500), max_size=6, unique=True)):
            event_type = draw(st.sampled_from(list(EventType)))
            fields = {name: draw(strategy) for name, strategy in drawn_fields.items()}
            stream.append(
                event(
                    event_type,
                    sequence,
                    namespace_id=namespace,
                    model_id=model_id,
                    message=f"{model_id}-{sequence}",
                    **fields,
                )
            )
    return stream


def draw_batches(draw: st.DrawFn, stream: list[DeploymentEvent]) -> list[list[DeploymentEvent]]:
    """The stream with some events delivered twice, shuffled and cut into batches."""
    delivered = stream + (draw(st.lists(st.sampled_from(stream), max_size=8)) if stream else [])
    delivered = draw(st.permutations(delivered))
    cuts = sorted(draw(st.lists(st.integers(0, len(delivered)), max_size=4)))
    return [delivered[i:j] for i, j in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]


async def apply_and_fold(
    batches: list[list[DeploymentEvent]], pure: dict[str, ObservedDeployment]
) -> dict[str, ObservedDeployment]:
    """Apply the batches through the worker's applier and fold the pure rules over the same batches, from
    `pure` (each model's state before, by model_id); returns what the rules make of each model."""
    applier = EventApplier(ModelStore())
    for batch in batches:
        await applier.apply(batch)
        for key, model_events in group_by_model(batch).items():
            pure[key.model_id], _ = apply_events(pure[key.model_id], model_events)
    return pure


async def stored_state(db: Any, namespace: str, model_id: str) -> tuple[dict[str, Any], ObservedDeployment]:
    """The model's stored document and the deployment state read from it."""
    doc = await db.custom_models.find_one({"namespace_id": namespace, "model_id": model_id})
    return doc, observed_from_details(ModelDetails.model_validate(doc))


@st.composite
def deliveries(draw):
    namespace = f"ns_{uuid.uuid4().hex[:12]}"  # a fresh set of documents for every example
    stream = draw_stream(draw, namespace, ray_deployment_name=st.none() | st.sampled_from(["app-a", "app-b"]))
    return namespace, stream, draw_batches(draw, stream)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=deliveries())
async def test_stored_state_equals_the_rules_for_any_delivery(db, case) -> None:
    namespace, stream, batches = case
    await db.custom_models.insert_many([seed_model_document(namespace, m) for m in MODEL_IDS])
    pure = await apply_and_fold(batches, {m: NEVER for m in MODEL_IDS})

    for model_id in MODEL_IDS:
        doc, stored = await stored_state(db, namespace, model_id)
        own = [e for e in stream if e.model_id == model_id]
        if not own:
            assert doc.get("last_event_sequence") is None and not doc.get("deployment_history")
            continue
        assert stored == pure[model_id], ModelKey(namespace, model_id)
        latest = max(own, key=lambda e: e.sequence)
        assert stored.last_event_sequence == latest.sequence
        assert stored.status is apply_event(NEVER, latest).status
        assert stored.message == latest.message
        history = doc["deployment_history"]
        sequences = [h["sequence"] for h in history]
        assert sequences == sorted(set(sequences)), "history out of order or applied twice"
        assert history[-1]["event_id"] == str(latest.event_id)
        assert {h["event_id"] for h in history} <= {str(e.event_id) for e in own}


CLUSTERS = ["a", "b"]


@st.composite
def two_cluster_deliveries(draw):
    namespace = f"ns_{uuid.uuid4().hex[:12]}"
    desired = {m: draw(st.sampled_from(CLUSTERS)) for m in MODEL_IDS}
    stream = draw_stream(draw, namespace, cluster=st.sampled_from(CLUSTERS))
    return namespace, desired, stream, draw_batches(draw, stream)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=two_cluster_deliveries())
async def test_two_clusters_stored_state_equals_the_rules_for_any_delivery(db, case) -> None:
    namespace, desired, stream, batches = case
    await db.custom_models.insert_many(
        [seed_model_document(namespace, m, desired_cluster=desired[m]) for m in MODEL_IDS]
    )
    pure = await apply_and_fold(
        batches, {m: ObservedDeployment(desired_cluster=desired[m]) for m in MODEL_IDS}
    )

    for model_id in MODEL_IDS:
        doc, stored = await stored_state(db, namespace, model_id)
        assert stored == pure[model_id], ModelKey(namespace, model_id)
        own = [e for e in stream if e.model_id == model_id]
        for cluster in CLUSTERS:
            mine = [e.sequence for e in own if e.cluster == cluster]
            assert stored.cluster_sequences.get(cluster) == (max(mine) if mine else None)
        entries = doc.get("deployment_history", [])
        assert len(entries) == len({(h["cluster"], h["sequence"]) for h in entries}), "applied twice"
        wanted = [e for e in own if e.cluster == desired[model_id]]
        if wanted and max(wanted, key=lambda e: e.sequence).event_type is EventType.READY:
            assert stored.deployed and stored.cluster == desired[model_id], "the other cluster undeployed it"
