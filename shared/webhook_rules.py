"""Webhook rules: which URLs may be called (SSRF), when to retry, give up and disable. Pure.

A URL must be https unless its host is allowed by MODELREG_WEBHOOK_ALLOWED_HOSTS; every address its host
resolves to must be public (not private, loopback, link-local, reserved, multicast) unless the host is
allowed or MODELREG_WEBHOOK_ALLOW_PRIVATE is set. The dispatcher checks the addresses again before each
delivery (DNS may change) and never follows redirects.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import msgspec

MAX_URL_LENGTH = 2048


class UrlRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UrlPolicy(msgspec.Struct, frozen=True):
    allowed_hosts: frozenset[str] = frozenset()
    allow_private: bool = False

    @classmethod
    def from_setting(cls, allowed_hosts: str, allow_private: bool) -> UrlPolicy:
        hosts = frozenset(h.strip().lower() for h in allowed_hosts.split(",") if h.strip())
        return cls(hosts, allow_private)

    def host_allowed(self, host: str, port: int | None) -> bool:
        return host in self.allowed_hosts or (port is not None and f"{host}:{port}" in self.allowed_hosts)


def parse_url(url: str, policy: UrlPolicy) -> tuple[str, int]:
    """The URL's host and port if its form is acceptable; raises UrlRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("webhook_url_invalid", f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("webhook_url_invalid", f"the URL is malformed: {exc}") from exc
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UrlRefused("webhook_url_invalid", "the URL must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise UrlRefused("webhook_url_invalid", "the URL must not carry credentials")
    if parts.scheme != "https" and not policy.host_allowed(host, port):
        raise UrlRefused("webhook_url_not_https", "webhook URLs must use https")
    return host, port or (443 if parts.scheme == "https" else 80)


def address_refusal(host: str, port: int, addresses: Iterable[str], policy: UrlPolicy) -> str | None:
    """Why the resolved `addresses` of `host` may not be called (None: they may)."""
    if policy.allow_private or policy.host_allowed(host, port):
        return None
    resolved = list(addresses)
    if not resolved:
        return "the host does not resolve"
    for text in resolved:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return f"the host resolves to a non-public address ({address})"
    return None


def literal_address(host: str) -> str | None:
    """The host itself if it is an IP address literal."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class RetryPolicy(msgspec.Struct, frozen=True):
    initial_backoff_s: float
    max_backoff_s: float
    retry_period_s: float
    disable_after_s: float


def backoff_s(attempts: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Delay before the next attempt after `attempts` failed ones: exponential, capped, full jitter in
    [half, whole] of the step so retries of many deliveries spread out."""
    step: float = min(policy.max_backoff_s, policy.initial_backoff_s * 2.0 ** max(0, min(attempts - 1, 40)))
    jitter: float = (rng or random.Random()).random()
    return step * (0.5 + jitter / 2)


def next_attempt(
    attempts: int, created_at: datetime, now: datetime, policy: RetryPolicy, rng: random.Random | None = None
) -> datetime | None:
    """When to try again after `attempts` failed ones; None once the retry period is over (give up)."""
    if (now - created_at).total_seconds() >= policy.retry_period_s:
        return None
    at = now + timedelta(seconds=backoff_s(attempts, policy, rng))
    deadline = created_at + timedelta(seconds=policy.retry_period_s)
    return min(at, deadline)


def should_disable(failing_since: datetime | None, now: datetime, policy: RetryPolicy) -> bool:
    """An endpoint whose every delivery failed for longer than the disable period is switched off."""
    return failing_since is not None and (now - failing_since).total_seconds() >= policy.disable_after_s


def wants(event_types: list[str], event_type: str) -> bool:
    return not event_types or event_type in event_types
