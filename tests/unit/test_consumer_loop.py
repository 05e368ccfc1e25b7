"""The one Kafka consumer loop: commit after handling, a rebalance-refused commit skipped, stop honoured."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from modelreg.shared.adapters.kafka import ConsumerLoop
from modelreg.shared.retry import RetryPolicy

TP = TopicPartition("t", 0)


class ScriptedConsumer:
    """Hands out the given batches, then sets `stop`; each commit answers with the next scripted outcome."""

    def __init__(self, batches: list[dict], stop: asyncio.Event, commit_errors: list = ()) -> None:
        self.batches, self.stop = list(batches), stop
        self.commit_errors = list(commit_errors)
        self.committed: list[dict] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        if self.batches:
            return self.batches.pop(0)
        self.stop.set()
        return {}

    async def commit(self, offsets: dict) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.committed.append(offsets)


def records(*offsets: int) -> list:
    return [SimpleNamespace(offset=o) for o in offsets]


async def test_each_batch_is_committed_after_it_was_handled_and_reported() -> None:
    stop = asyncio.Event()
    consumer = ScriptedConsumer([{TP: records(0, 1)}, {TP: records(2)}], stop)
    seen: list[tuple] = []

    async def handle(batch: dict) -> int:
        assert len(consumer.committed) == len(seen)  # the previous batch is committed, this one not yet
        return sum(len(r) for r in batch.values())

    loop = ConsumerLoop(consumer, RetryPolicy(stop, max_backoff_s=0.01), timeout_ms=1, max_records=10)
    await loop.run(handle, lambda batch, offsets, outcome: seen.append((offsets, outcome)))

    assert consumer.committed == [{TP: 2}, {TP: 3}]
    assert seen == [({TP: 2}, 2), ({TP: 3}, 1)]


async def test_outages_are_retried_and_a_commit_refused_after_a_rebalance_is_skipped() -> None:
    stop = asyncio.Event()
    consumer = ScriptedConsumer(
        [{TP: records(0)}, {TP: records(1)}],
        stop,
        commit_errors=[KafkaConnectionError("down"), CommitFailedError("rebalanced")],
    )

    async def handle(batch: dict) -> None:
        return None

    retried: list[str] = []
    policy = RetryPolicy(stop, max_backoff_s=0.01, on_retry=retried.append)
    await ConsumerLoop(consumer, policy, timeout_ms=1, max_records=10).run(handle)

    assert retried == ["commit"]
    assert consumer.committed == [{TP: 2}]  # the first batch's commit was refused: redelivered elsewhere


async def test_stopping_during_a_failing_commit_leaves_the_batch_uncommitted() -> None:
    stop = asyncio.Event()
    consumer = ScriptedConsumer([{TP: records(0)}], stop, commit_errors=[KafkaConnectionError("down")] * 100)

    async def handle(batch: dict) -> None:
        stop.set()  # shutdown is asked while the batch is in hand

    await ConsumerLoop(consumer, RetryPolicy(stop), timeout_ms=1, max_records=10).run(handle)

    assert consumer.committed == []
