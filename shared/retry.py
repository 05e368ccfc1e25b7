"""Retrying an operation against MongoDB or Kafka while they are unavailable, and only then."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from aiokafka import errors as kafka_errors

T = TypeVar("T")
log = structlog.get_logger("modelreg.retry")

# Kafka errors about the request itself (its size, topic, rights, version or settings): sending the same
# request again fails the same way, so retrying would wedge the caller. Everything else (connection loss,
# timeouts, leader moves, aiokafka's generic KafkaError for "no metadata") is an outage and is retried.
PERMANENT_KAFKA_ERRORS: tuple[type[kafka_errors.KafkaError], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.UnsupportedForMessageFormatError,
    kafka_errors.UnsupportedCodecError,
    kafka_errors.IncompatibleBrokerVersion,
    kafka_errors.UnrecognizedBrokerVersion,
    kafka_errors.KafkaConfigurationError,
    kafka_errors.IllegalArgumentError,
    kafka_errors.InvalidRequestError,
    kafka_errors.InvalidRequiredAcksError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidTimestampError,
    kafka_errors.PolicyViolationError,
    kafka_errors.OffsetMetadataTooLargeError,
    kafka_errors.InvalidCommitOffsetSizeError,
    kafka_errors.InvalidGroupIdError,
    kafka_errors.InconsistentGroupProtocolError,
    kafka_errors.InvalidSessionTimeoutError,
    kafka_errors.ProducerClosed,
    kafka_errors.ProducerFenced,
)


def is_permanent_error(exc: BaseException) -> bool:
    """True for a Kafka error that no retry can fix (aiokafka marks none of these `retriable`)."""
    return isinstance(exc, PERMANENT_KAFKA_ERRORS) and not exc.retriable


def jittered(delay_s: float) -> float:
    """A random wait between half the backoff and all of it."""
    return delay_s * random.uniform(0.5, 1.0)


class Stopping(Exception):
    """Shutdown was requested while the operation was still failing."""


async def retry_with_backoff(
    call: Callable[[], Awaitable[T]],
    *,
    operation: str,
    stop: asyncio.Event,
    retry_on: tuple[type[BaseException], ...],
    max_backoff_s: float = 10.0,
    on_retry: Callable[[str], None] | None = None,
) -> T:
    """Call until it succeeds, sleeping about 0.2 s, 0.4 s, … (capped, with jitter) between failures.

    Raises Stopping instead of retrying once `stop` is set. A permanent Kafka error (`is_permanent_error`)
    is raised at once even when `retry_on` covers it.
    """
    # Hand-written rather than tenacity or stamina: neither is a dependency, and the stop event and the
    # permanent-error rule would need as much code around them as this loop is.
    delay = 0.2
    while True:
        try:
            return await call()
        except retry_on as exc:
            if is_permanent_error(exc):
                raise
            if stop.is_set():
                raise Stopping(operation) from exc
            if on_retry is not None:
                on_retry(operation)
            # Jitter: processes that lost the same server at once do not all come back at the same instant.
            sleep_s = jittered(delay)
            log.warning(
                "operation failed, retrying", operation=operation, error=repr(exc)[:500], delay_s=sleep_s
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=sleep_s)
            except TimeoutError:
                pass
            delay = min(delay * 2, max_backoff_s)


@dataclass(frozen=True)
class RetryPolicy:
    """One process's way of retrying: until `stop` is set, backoff capped at `max_backoff_s`."""

    stop: asyncio.Event
    max_backoff_s: float = 10.0
    on_retry: Callable[[str], None] | None = None

    async def run(
        self, operation: str, call: Callable[[], Awaitable[T]], retry_on: tuple[type[BaseException], ...]
    ) -> T:
        return await retry_with_backoff(
            call,
            operation=operation,
            stop=self.stop,
            retry_on=retry_on,
            max_backoff_s=self.max_backoff_s,
            on_retry=self.on_retry,
        )
