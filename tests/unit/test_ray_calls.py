"""Blocking Ray calls run off the event loop, one at a time; a call that hangs is reported, not awaited."""

from __future__ import annotations

import threading

import pytest

from modelreg.services.serve_bridge.ray_calls import RayCalls, RayHung


async def test_calls_run_in_order_on_one_thread_and_errors_reach_the_caller() -> None:
    calls = RayCalls(adapter=None, timeout_s=10)
    seen: list[str] = []

    def record(value: str) -> str:
        seen.append(threading.current_thread().name)
        return value.upper()

    def fail() -> None:
        raise ConnectionError("no cluster")

    assert [await calls.call(record, v) for v in ("a", "b")] == ["A", "B"]
    with pytest.raises(ConnectionError, match="no cluster"):
        await calls.call(fail)
    assert seen == ["ray-calls", "ray-calls"]
    calls.shutdown()


async def test_a_hanging_call_raises_ray_hung() -> None:
    release = threading.Event()
    calls = RayCalls(adapter=None, timeout_s=0.2)

    with pytest.raises(RayHung, match="wait did not return within 0.2s"):
        await calls.call(release.wait)

    release.set()
    calls.shutdown()
