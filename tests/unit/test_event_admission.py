"""The worker's admission rules: events from the future and endpoints outside the configured prefixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.shared.contracts import InvalidMessage
from modelreg.shared.event_admission import (
    ENDPOINT_NOT_ALLOWED,
    FROM_THE_FUTURE,
    AdmissionRules,
    endpoint_allowed,
    future_problem,
    latest_acceptable_sequence,
    parse_endpoint_prefixes,
)
from modelreg.shared.settings import Settings
from tests.factories import event

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW_S = 300.0
NOW_US = int(NOW.timestamp() * 1_000_000)
MAX_SEQUENCE = 2**63 - 1


def started(sequence: int, occurred_at: datetime = NOW, **fields) -> object:
    return event("deployment.started", sequence, occurred_at=occurred_at, **fields)


def test_the_frozen_model_findings_are_from_the_future() -> None:
    huge = future_problem(started(MAX_SEQUENCE), NOW, SKEW_S)
    assert huge is not None and str(MAX_SEQUENCE) in huge
    year_9999 = future_problem(started(1, datetime(9999, 1, 1, tzinfo=UTC)), NOW, SKEW_S)
    assert year_9999 is not None and "9999" in year_9999


@given(st.integers(min_value=0, max_value=NOW_US + int(SKEW_S * 1_000_000)))
def test_small_and_clock_derived_sequences_up_to_now_plus_skew_are_admitted(sequence: int) -> None:
    assert future_problem(started(sequence), NOW, SKEW_S) is None


@given(st.integers(min_value=NOW_US + int(SKEW_S * 1_000_000) + 1, max_value=MAX_SEQUENCE))
def test_sequences_beyond_now_plus_skew_are_refused(sequence: int) -> None:
    assert future_problem(started(sequence), NOW, SKEW_S) is not None


@given(st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)))
def test_occurred_at_is_refused_exactly_when_later_than_now_plus_skew(offset: timedelta) -> None:
    problem = future_problem(started(1, NOW + offset), NOW, SKEW_S)
    assert (problem is not None) == (offset > timedelta(seconds=SKEW_S))


def test_the_sequence_limit_moves_with_the_clock_and_the_skew() -> None:
    assert latest_acceptable_sequence(NOW, 0) == NOW_US
    assert latest_acceptable_sequence(NOW, SKEW_S) == NOW_US + 300_000_000
    assert latest_acceptable_sequence(NOW + timedelta(seconds=1), 0) == NOW_US + 1_000_000


def test_the_bridge_sequence_of_now_is_admitted_with_zero_skew() -> None:
    assert future_problem(started(NOW_US, NOW), NOW, 0) is None
    assert future_problem(started(NOW_US + 1, NOW), NOW, 0) is not None


def test_prefix_setting_is_split_on_commas_and_trimmed() -> None:
    assert parse_endpoint_prefixes("") == ()
    assert parse_endpoint_prefixes(" http://a:1 , https://b/x/ ,,") == ("http://a:1", "https://b/x/")


@pytest.mark.parametrize(
    ("endpoint", "allowed"),
    [
        ("http://serve.internal:8001/ns/m", True),
        ("http://serve.internal:8001", True),
        ("HTTP://Serve.Internal:8001/ns/m", True),
        ("https://models.example.com/serve/ns/m", True),
        ("https://models.example.com/serve", True),
        ("https://models.example.com/serve?x=1", True),
        ("http://serve.internal:80012/ns/m", False),  # another port
        ("http://serve.internal.evil.example:8001/", False),
        ("https://serve.internal:8001/ns/m", False),  # another scheme
        ("https://models.example.com/serve-evil/m", False),  # not at a "/" boundary
        ("https://models.example.com/other", False),
        ("https://models.example.com/serve/../admin", False),
        ("https://models.example.com/serve/%2e%2e/admin", False),
        ("http://evil.example/", False),
    ],
)
def test_endpoints_must_lie_under_a_configured_prefix(endpoint: str, allowed: bool) -> None:
    prefixes = ("http://serve.internal:8001", "https://models.example.com/serve/")
    assert endpoint_allowed(endpoint, prefixes) is allowed


def test_without_prefixes_any_endpoint_is_allowed() -> None:
    assert endpoint_allowed("http://evil.example/", ())


def test_rules_raise_the_dlq_reason() -> None:
    settings = Settings(max_clock_skew_s=SKEW_S, event_endpoint_prefixes="http://serve:8001")
    rules = AdmissionRules.from_settings(settings)
    rules.check(started(5, endpoint="http://serve:8001/ns/m"), NOW)
    rules.check(started(5), NOW)  # no endpoint: nothing to check
    with pytest.raises(InvalidMessage) as future:
        rules.check(started(MAX_SEQUENCE, endpoint="http://serve:8001/ns/m"), NOW)
    assert future.value.reason == FROM_THE_FUTURE
    with pytest.raises(InvalidMessage) as outside:
        rules.check(started(5, endpoint="http://evil.example/"), NOW)
    assert outside.value.reason == ENDPOINT_NOT_ALLOWED and "evil.example" in outside.value.detail
