"""The bridge's pure rules: Serve names, status → event, transition detection, sequences, failure reasons."""

from __future__ import annotations

import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modelreg.services.serve_bridge.commands import ray_actor_options
from modelreg.services.serve_bridge.naming import (
    NamingError,
    app_name,
    check_model_hash,
    deployment_name,
    endpoint_url,
    parse_app_name,
    parse_deployment_name,
    route_prefix,
)
from modelreg.services.serve_bridge.transitions import (
    AppObservation,
    DeploymentObservation,
    Reported,
    event_for_status,
    failure_reason,
    models_missing_from_serve,
    status_message,
    transition,
)
from modelreg.shared.contracts import ID_PATTERN, EventType, ModelFormat, ModelKey
from modelreg.shared.documents import ResourceRequirementsFields
from modelreg.shared.event_building import SequenceClock

HASH = "ab" * 32
ids = st.from_regex(ID_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 40)


def test_plain_ids_give_readable_names() -> None:
    key = ModelKey("ns_a", "model-1")
    assert app_name("modelreg", key) == "modelreg.ns_a.model-1"
    assert route_prefix(key) == "/ns_a/model-1"
    assert endpoint_url("http://127.0.0.1:8001/", key) == "http://127.0.0.1:8001/ns_a/model-1"


@given(ids, ids)
def test_app_names_round_trip_and_stay_safe_for_serve(namespace_id: str, model_id: str) -> None:
    key = ModelKey(namespace_id, model_id)
    try:
        name = app_name("modelreg", key)
    except NamingError:
        assume(False)  # escaped non-ASCII ids can exceed the length limit; covered below
    assert parse_app_name("modelreg", name) == key
    assert "#" not in name and "/" not in name and name.count(".") == 2


@given(ids, ids, ids, ids)
def test_different_models_never_share_a_route(a: str, b: str, c: str, d: str) -> None:
    if (a, b) != (c, d):
        assert route_prefix(ModelKey(a, b)) != route_prefix(ModelKey(c, d))


@given(ids, ids)
def test_routes_are_valid_serve_route_prefixes(namespace_id: str, model_id: str) -> None:
    route = route_prefix(ModelKey(namespace_id, model_id))
    assert route.startswith("/") and not route.endswith("/")
    assert "{" not in route and "}" not in route and "//" not in route
    assert all(part not in (".", "..") for part in route.split("/"))


def test_unusual_ids_are_escaped_in_routes_and_names() -> None:
    key = ModelKey("ns.a", "m?x=1%")
    assert app_name("modelreg", key) == "modelreg.ns%2Ea.m%3Fx%3D1%25"
    route = route_prefix(key)
    assert route.startswith("/ns.a/m-x-1--") and "?" not in route and "%" not in route


def test_foreign_or_hand_made_app_names_are_not_ours() -> None:
    assert parse_app_name("modelreg", "default") is None
    assert parse_app_name("modelreg", "other.ns.m") is None
    assert parse_app_name("modelreg", "modelreg.ns") is None
    assert parse_app_name("modelreg", "modelreg.ns.m.x") is None
    assert parse_app_name("modelreg", "modelreg.n%73.m") is None  # "%73" is "s": not how we encode it


def test_too_long_ids_are_refused_with_a_reason() -> None:
    with pytest.raises(NamingError, match="too long"):
        app_name("modelreg", ModelKey("n" * 200, "m" * 200))


def test_deployment_name_carries_format_and_archive_hash() -> None:
    name = deployment_name("onnx", HASH.upper())
    assert name == "onnx-abababababababab"
    assert parse_deployment_name(name) == (ModelFormat.ONNX, "abababababababab")
    assert parse_deployment_name("ModelServer") is None
    assert parse_deployment_name("tensorflow-abababababababab") is None
    with pytest.raises(NamingError, match="not a sha256"):
        check_model_hash("not-a-hash")


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        ("NOT_STARTED", EventType.STARTED),
        ("DEPLOYING", EventType.STARTED),
        ("RUNNING", EventType.READY),
        ("UNHEALTHY", EventType.UNHEALTHY),
        ("DEPLOY_FAILED", EventType.FAILED),
        ("DELETING", EventType.DELETING),
    ],
)
def test_every_serve_application_status_maps_to_an_event(status: str, event_type: EventType) -> None:
    assert event_for_status(status) is event_type


def test_an_unknown_serve_status_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="SLEEPING"):
        event_for_status("SLEEPING")


def app(status: str, deployment: str = "onnx-abababababababab", message: str = "") -> AppObservation:
    return AppObservation(status=status, deployments={deployment: DeploymentObservation(status, message)})


def test_transitions_fire_once_per_change() -> None:
    assert transition(None, app("DEPLOYING")) is EventType.STARTED
    started = Reported(EventType.STARTED, True, "onnx-abababababababab")
    assert transition(started, app("DEPLOYING")) is None
    assert transition(started, app("RUNNING")) is EventType.READY
    ready = Reported(EventType.READY, True, "onnx-abababababababab")
    assert transition(ready, app("RUNNING")) is None
    assert transition(ready, app("UNHEALTHY")) is EventType.UNHEALTHY
    assert transition(ready, app("DELETING")) is EventType.DELETING
    assert transition(ready, None) is EventType.DELETED


def test_a_new_archive_in_the_same_status_is_a_transition() -> None:
    ready = Reported(EventType.READY, True, "onnx-abababababababab")
    assert transition(ready, app("RUNNING", "onnx-cdcdcdcdcdcdcdcd")) is EventType.READY


def test_absence_is_only_news_when_an_application_was_there() -> None:
    assert transition(None, None) is None
    assert transition(Reported(EventType.FAILED, False), None) is None  # refused before reaching Serve
    assert transition(Reported(EventType.DELETED, False), None) is None
    assert transition(Reported(EventType.STARTED, False), None) is None  # command still in hand
    assert transition(Reported(EventType.FAILED, True, "onnx-abababababababab"), None) is EventType.DELETED


TORCH_MISSING = (
    "modelreg.services.serve_bridge.loaders.ModelLoadError: model_format 'pytorch' needs package 'torch'"
)


def test_failure_reason_is_the_exception_line_of_rays_traceback() -> None:
    ray_message = (
        "The deployment failed to start 3 times in a row. This may be due to a problem with its "
        "constructor. Error:\n\x1b[36mray::ServeReplica:a:b.initialize_and_get_metadata()\x1b[39m\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        f"{TORCH_MISSING}"
    )
    observed = AppObservation(
        status="DEPLOY_FAILED",
        message="Failed to update the deployments ['pytorch-ab'].",
        deployments={"pytorch-ab": DeploymentObservation("DEPLOY_FAILED", ray_message)},
    )
    reason = failure_reason(observed)
    assert reason.startswith(TORCH_MISSING)
    assert "failed to start 3 times in a row." in reason
    assert "\x1b" not in reason
    assert status_message(observed) == reason


def test_failure_reason_without_deployment_messages_uses_the_application_message() -> None:
    observed = AppObservation(status="DEPLOY_FAILED", message="Prefix /a is being used by application x.")
    assert failure_reason(observed) == "Prefix /a is being used by application x."
    assert status_message(AppObservation(status="RUNNING", message="ok")) is None


def test_sequences_increase_even_when_the_clock_stalls_or_goes_back() -> None:
    readings = iter([1_000, 1_000, 900, 5_000])
    clock = SequenceClock(now=lambda: next(readings))
    assert [clock.next() for _ in range(4)] == [1_000, 1_001, 1_002, 5_000]


def test_a_restarted_bridge_continues_above_the_previous_sequences() -> None:
    # A burst can run ahead of the clock by one microsecond per event; a restart takes far longer.
    started_at_us, restart_takes_us = 1_700_000_000_000_000, 10_000
    first = SequenceClock(now=lambda: started_at_us)
    last_before_restart = max(first.next() for _ in range(1000))
    assert SequenceClock(now=lambda: started_at_us + restart_takes_us).next() > last_before_restart
    # By default the clock is the wall clock in microseconds, which a restart does not take back.
    assert abs(SequenceClock().next() - time.time_ns() // 1000) < 1_000_000


def test_models_missing_from_serve_skip_those_with_an_application_or_a_command_in_hand() -> None:
    a, b, c = ModelKey("n", "a"), ModelKey("n", "b"), ModelKey("n", "c")
    assert models_missing_from_serve([a, b, c], {a: object()}, {c}) == [b]


def test_resource_requirements_become_ray_actor_options() -> None:
    resources = ResourceRequirementsFields(num_cpus=0.25, num_gpus=1, memory=256 * 1024**2)
    assert ray_actor_options(resources) == {"num_cpus": 0.25, "num_gpus": 1, "memory": 256 * 1024**2}
    assert "memory" not in ray_actor_options(ResourceRequirementsFields(memory=0))
