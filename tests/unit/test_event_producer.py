"""The event producer client: events per the contract, monotonic sequences, keyed by model, one topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.shared.adapters.event_producer import DEFAULT_EVENTS_TOPIC, DeploymentEventProducer
from modelreg.shared.contracts import EventType, InvalidMessage
from modelreg.shared.event_building import SequenceClock, build_event, check_event, event_type_of
from modelreg.shared.settings import Settings
from tests.fakes import RecordingPublisher


def producer(**options) -> tuple[DeploymentEventProducer, RecordingPublisher]:
    sent = RecordingPublisher()
    return DeploymentEventProducer("127.0.0.1:9", "events-t", publisher=sent, **options), sent


async def test_each_helper_publishes_its_event_type_keyed_by_model_to_the_topic() -> None:
    client, sent = producer()
    await client.started("ns_a", "m1")
    await client.ready("ns_a", "m1", endpoint="http://serve:8000/ns_a/m1", base_image="img:1")
    await client.unhealthy("ns_a", "m1", message="replica down")
    await client.failed("ns_a", "m1", message="oom")
    await client.deleting("ns_a", "m1")
    await client.deleted("ns_a", "m1")
    events = sent.events()  # decoded as the worker decodes them
    assert [e.event_type for e in events] == [
        EventType.STARTED,
        EventType.READY,
        EventType.UNHEALTHY,
        EventType.FAILED,
        EventType.DELETING,
        EventType.DELETED,
    ]
    assert {(topic, key) for topic, key, _ in sent.sent} == {("events-t", b"ns_a/m1")}
    assert events[1].endpoint == "http://serve:8000/ns_a/m1" and events[1].base_image == "img:1"
    assert events[3].message == "oom"
    assert len({e.event_id for e in events}) == len(events)


async def test_sequences_increase_across_models_and_event_types() -> None:
    client, sent = producer(clock=SequenceClock(now=lambda: 1000))  # a clock that stands still
    for model in ("m1", "m2", "m1"):
        await client.started("ns_a", model)
    assert [e.sequence for e in sent.events()] == [1000, 1001, 1002]


async def test_cluster_is_set_per_producer_and_can_be_overridden_per_event() -> None:
    client, sent = producer(cluster="gpu-east")
    await client.started("ns_a", "m1")
    await client.started("ns_a", "m1", cluster="cpu-west")
    await producer()[0].publish(event := producer()[0].event("started", "ns_a", "m1"))
    assert [e.cluster for e in sent.events()] == ["gpu-east", "cpu-west"]
    assert event.cluster is None


def test_given_stamps_are_kept_and_an_unknown_keyword_is_refused() -> None:
    client, _ = producer(cluster="gpu-east")
    stamp = datetime(2026, 1, 2, tzinfo=UTC)
    event_id = uuid.uuid4()
    event = client.event("failed", "ns_a", "m1", occurred_at=stamp, event_id=event_id, cluster=None)
    assert (event.occurred_at, event.event_id, event.cluster) == (stamp, event_id, "gpu-east")
    with pytest.raises(TypeError, match="endpoit"):
        client.event("started", "ns_a", "m1", endpoit="http://serve:8000/ns_a/m1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "fields",
    [
        {"endpoint": "javascript:alert(1)"},
        {"message": "forged\rline"},
        {"base_image": "img\x1b[2J"},
        {"cluster": "Not_A_Cluster"},
    ],
)
async def test_an_event_the_worker_would_dead_letter_is_refused_before_sending(fields) -> None:
    client, sent = producer()
    with pytest.raises(InvalidMessage) as refused:
        await client.started("ns_a", "m1", **fields)
    assert refused.value.reason == "invalid_event"
    assert sent.sent == []


async def test_an_invalid_model_id_is_refused_and_ready_needs_its_endpoint_and_image() -> None:
    client, sent = producer()
    with pytest.raises(InvalidMessage):
        await client.started("ns_a", "../etc")
    with pytest.raises(ValueError, match="requires endpoint and base_image"):
        await client.send("ready", "ns_a", "m1", endpoint="http://serve:8000/ns_a/m1")
    assert sent.sent == []


async def test_without_the_check_the_event_goes_out_as_the_bridge_wants() -> None:
    client, sent = producer(check_contract=False)
    await client.started("ns_a", "m1", endpoint="javascript:alert(1)")
    assert len(sent.sent) == 1


def test_from_settings_takes_the_bootstrap_servers_topic_and_idempotence() -> None:
    settings = Settings(kafka_bootstrap_servers="k:1", events_topic="ev", kafka_idempotent=False)
    client = DeploymentEventProducer.from_settings(settings)
    assert client.topic == "ev"
    owned = client._owned
    assert owned is not None
    assert owned.settings.kafka_bootstrap_servers == "k:1" and owned.settings.kafka_idempotent is False
    assert DeploymentEventProducer("k:1").topic == DEFAULT_EVENTS_TOPIC == "model-deployment-events"


@pytest.mark.parametrize("value", ["ready", "deployment.ready", EventType.READY])
def test_event_types_by_short_name_full_name_or_enum(value) -> None:
    assert event_type_of(value) is EventType.READY


def test_an_unknown_event_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="started, ready, unhealthy, failed, deleting, deleted"):
        event_type_of("exploded")


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=50))
def test_a_clock_never_repeats_nor_goes_back_whatever_the_wall_clock_does(readings) -> None:
    values = iter(readings)
    clock = SequenceClock(now=lambda: next(values))
    sequences = [clock.next() for _ in readings]
    assert sequences == sorted(set(sequences))
    assert all(s >= r for s, r in zip(sequences, readings, strict=True))


@given(
    st.sampled_from(list(EventType)),
    st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True),
    st.integers(min_value=0, max_value=2**63 - 1),
)
def test_built_events_pass_the_contract(event_type, model_id, sequence) -> None:
    fields = {"endpoint": "http://s:1/x", "base_image": "i"} if event_type is EventType.READY else {}
    event = build_event(event_type, "ns_a", model_id, sequence=sequence, **fields)
    assert check_event(event) is event
    assert event.sequence == sequence and event.occurred_at.tzinfo is not None
