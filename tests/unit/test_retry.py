"""Which failures are retried: outages are, Kafka errors about the request itself are not; and stopping."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from aiokafka import errors as kafka_errors

from modelreg.shared.retry import is_permanent_error, jittered, retry_with_backoff
from modelreg.shared.signals import stop_on_signals


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.MessageSizeTooLargeError("too big"),
        kafka_errors.RecordTooLargeError("too big"),
        kafka_errors.InvalidTopicError(),
        kafka_errors.TopicAuthorizationFailedError(),
        kafka_errors.GroupAuthorizationFailedError(),
        kafka_errors.UnsupportedVersionError(),
        kafka_errors.ProducerClosed(),
    ],
)
def test_errors_about_the_request_itself_are_permanent(error) -> None:
    assert is_permanent_error(error)


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.KafkaConnectionError("refused"),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.RequestTimedOutError(),
        kafka_errors.NotLeaderForPartitionError(),
        kafka_errors.KafkaError("Unable to get cluster metadata over all known brokers"),
        ConnectionResetError(),
        ValueError("not a Kafka error"),
    ],
)
def test_outages_and_unknown_errors_are_not_permanent(error) -> None:
    assert not is_permanent_error(error)


async def test_a_permanent_error_is_raised_at_once_even_when_its_type_is_retried() -> None:
    calls = 0

    async def send() -> None:
        nonlocal calls
        calls += 1
        raise kafka_errors.MessageSizeTooLargeError("The message is 1048700 bytes")

    with pytest.raises(kafka_errors.MessageSizeTooLargeError):
        await retry_with_backoff(
            send, operation="send", stop=asyncio.Event(), retry_on=(kafka_errors.KafkaError,)
        )
    assert calls == 1


async def test_an_outage_is_retried_until_the_call_succeeds() -> None:
    failures = [kafka_errors.KafkaConnectionError("refused"), kafka_errors.KafkaTimeoutError()]

    async def send() -> str:
        if failures:
            raise failures.pop(0)
        return "sent"

    retried: list[str] = []
    result = await retry_with_backoff(
        send,
        operation="send",
        stop=asyncio.Event(),
        retry_on=(kafka_errors.KafkaError,),
        max_backoff_s=0.2,
        on_retry=retried.append,
    )
    assert result == "sent" and retried == ["send", "send"]


def test_the_wait_between_retries_is_jittered_between_half_the_backoff_and_all_of_it() -> None:
    waits = [jittered(4.0) for _ in range(1000)]
    assert all(2.0 <= wait <= 4.0 for wait in waits)
    assert len(set(waits)) > 900  # spread out, not one fixed value


async def test_sigterm_and_sigint_set_the_stop_event() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            os.kill(os.getpid(), sig)
            await asyncio.wait_for(stop.wait(), timeout=5)
        finally:
            loop = asyncio.get_running_loop()
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)
