"""Webhook URL rules (SSRF), backoff, giving up and disabling (shared/webhook_rules.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.shared.webhook_rules import (
    RetryPolicy,
    UrlPolicy,
    UrlRefused,
    address_refusal,
    backoff_s,
    next_attempt,
    parse_url,
    should_disable,
    wants,
)

STRICT = UrlPolicy()
POLICY = RetryPolicy(initial_backoff_s=5, max_backoff_s=3600, retry_period_s=86400, disable_after_s=3 * 86400)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/h", "webhook_url_not_https"),
        ("ftp://example.com/h", "webhook_url_invalid"),
        ("https:///h", "webhook_url_invalid"),
        ("https://u:p@example.com/h", "webhook_url_invalid"),
        ("https://example.com:99999/h", "webhook_url_invalid"),
        ("https://example.com/" + "a" * 3000, "webhook_url_invalid"),
    ],
)
def test_refused_url_forms(url: str, code: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        parse_url(url, STRICT)
    assert refused.value.code == code


def test_https_is_needed_unless_the_host_is_allowed() -> None:
    assert parse_url("https://Example.com/h", STRICT) == ("example.com", 443)
    allowed = UrlPolicy.from_setting(" receiver.local , 127.0.0.1:9000", False)
    assert parse_url("http://receiver.local/h", allowed) == ("receiver.local", 80)
    assert parse_url("http://127.0.0.1:9000/h", allowed) == ("127.0.0.1", 9000)
    with pytest.raises(UrlRefused):
        parse_url("http://127.0.0.1:9001/h", allowed)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.3.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:10.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert address_refusal("h.example", 443, [address], STRICT) is not None
    assert address_refusal("h.example", 443, [address], UrlPolicy(allow_private=True)) is None
    assert address_refusal("h.example", 443, [address], UrlPolicy(frozenset({"h.example"}))) is None


def test_every_resolved_address_must_be_public() -> None:
    assert address_refusal("h.example", 443, ["93.184.216.34"], STRICT) is None
    assert address_refusal("h.example", 443, ["93.184.216.34", "10.0.0.1"], STRICT) is not None
    assert address_refusal("h.example", 443, [], STRICT) == "the host does not resolve"


@given(st.integers(min_value=1, max_value=200), st.randoms(use_true_random=False))
def test_backoff_doubles_within_jitter_and_is_capped(attempts: int, rng: random.Random) -> None:
    step = min(POLICY.max_backoff_s, POLICY.initial_backoff_s * 2 ** (attempts - 1))
    assert step / 2 <= backoff_s(attempts, POLICY, rng) <= step


@given(st.integers(min_value=1, max_value=60), st.floats(min_value=0, max_value=200_000))
def test_retries_end_with_the_retry_period(attempts: int, elapsed_s: float) -> None:
    now = T0 + timedelta(seconds=elapsed_s)
    at = next_attempt(attempts, T0, now, POLICY, random.Random(1))
    if elapsed_s >= POLICY.retry_period_s:
        assert at is None
    else:
        assert at is not None and now < at <= T0 + timedelta(seconds=POLICY.retry_period_s)


def test_disable_after_failing_for_the_whole_period() -> None:
    assert not should_disable(None, T0, POLICY)
    assert not should_disable(T0, T0 + timedelta(days=2), POLICY)
    assert should_disable(T0, T0 + timedelta(days=3), POLICY)


def test_event_type_filters() -> None:
    assert wants([], "model.created")
    assert wants(["model.created"], "model.created")
    assert not wants(["deployment.changed"], "model.created")
