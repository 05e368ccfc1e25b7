"""Which decoded events the worker lets reach the sequence guard. Pure functions: the caller passes the clock.

The contract (shared/contracts.py) refuses what is wrong in any deployment; these rules need the time or the
settings, so the worker applies them after decoding. A refused event goes to the DLQ with the reason here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import msgspec

from modelreg.shared.contracts import DeploymentEvent, InvalidMessage
from modelreg.shared.settings import Settings

FROM_THE_FUTURE = "from_the_future"
ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"

MICROSECONDS = 1_000_000


def latest_acceptable_sequence(now: datetime, max_clock_skew_s: float) -> int:
    """Sequences are microseconds since the epoch by convention; later than now + skew is from the future."""
    return int((now + timedelta(seconds=max_clock_skew_s)).timestamp() * MICROSECONDS)


def future_problem(event: DeploymentEvent, now: datetime, max_clock_skew_s: float) -> str | None:
    """Why the event claims to come from beyond now + the allowed clock skew, or None when it does not.

    Applied, such an event would make every real event after it stale (sequence) or hide newer requests
    (occurred_at), until an operator resyncs the model.
    """
    latest_time = now + timedelta(seconds=max_clock_skew_s)
    if event.occurred_at > latest_time:
        return f"occurred_at {event.occurred_at.isoformat()} is later than {latest_time.isoformat()}"
    latest_sequence = latest_acceptable_sequence(now, max_clock_skew_s)
    if event.sequence > latest_sequence:
        return (
            f"sequence {event.sequence} is later than now + {max_clock_skew_s:g}s "
            f"({latest_sequence} microseconds since the epoch)"
        )
    return None


def parse_endpoint_prefixes(setting: str) -> tuple[str, ...]:
    """MODELREG_EVENT_ENDPOINT_PREFIXES: comma-separated URL prefixes; blanks around them are ignored."""
    return tuple(prefix.strip() for prefix in setting.split(",") if prefix.strip())


def _has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in unquote(path).split("/"))


def endpoint_allowed(endpoint: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `endpoint` lies under one of `prefixes` (no prefixes: any endpoint the contract accepts).

    Scheme and host:port must be equal (case-insensitively); the path must continue the prefix's path at a
    "/" boundary, so "http://serve:8001" does not admit "http://serve:80012/" nor "/models" "/models-evil".
    Paths with "." or ".." segments could climb out of a prefix and are refused.
    """
    if not prefixes:
        return True
    url = urlsplit(endpoint)
    if _has_dot_segment(url.path):
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (url.scheme.lower(), url.netloc.lower()) != (allowed.scheme.lower(), allowed.netloc.lower()):
            continue
        base = allowed.path.rstrip("/")
        if url.path == base or url.path.startswith(base + "/"):
            return True
    return False


class AdmissionRules(msgspec.Struct, kw_only=True, frozen=True):
    """The settings-dependent rules, bound once per worker."""

    max_clock_skew_s: float
    endpoint_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> AdmissionRules:
        return cls(
            max_clock_skew_s=settings.max_clock_skew_s,
            endpoint_prefixes=parse_endpoint_prefixes(settings.event_endpoint_prefixes),
        )

    def check(self, event: DeploymentEvent, now: datetime) -> None:
        """Raise InvalidMessage (the DLQ reason and why) unless the worker may apply `event`."""
        problem = future_problem(event, now, self.max_clock_skew_s)
        if problem is not None:
            raise InvalidMessage(FROM_THE_FUTURE, problem)
        if event.endpoint is not None and not endpoint_allowed(event.endpoint, self.endpoint_prefixes):
            raise InvalidMessage(
                ENDPOINT_NOT_ALLOWED,
                f"endpoint {event.endpoint[:300]!r} is not under MODELREG_EVENT_ENDPOINT_PREFIXES",
            )
