"""A small server-sent events client for the watch tests (a real HTTP connection, via httpx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


async def parse(lines: AsyncIterator[str]) -> AsyncIterator[SseEvent]:
    """Events as the SSE spec frames them; a block of only comments comes out as an event with event=None."""
    current = SseEvent()
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data or current.event or current.id or current.comments:
                current.data = "\n".join(data)
                yield current
            current, data = SseEvent(), []
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            current.event = value
        elif name == "id":
            current.id = value
        elif name == "data":
            data.append(value)


class Watch:
    """An open watch stream: `await next_event()` skips heartbeats unless asked for them."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._events = parse(response.aiter_lines())

    async def next_event(self, timeout_s: float = 30, heartbeats: bool = False) -> SseEvent:
        while True:
            event = await asyncio.wait_for(anext(self._events), timeout_s)
            if heartbeats or event.event is not None or event.data:
                return event

    async def events_until(self, count: int, timeout_s: float = 30) -> list[SseEvent]:
        return [await self.next_event(timeout_s) for _ in range(count)]


@asynccontextmanager
async def watch(
    base_url: str, path: str, key: str, last_event_id: str | None = None
) -> AsyncIterator[Watch | httpx.Response]:
    """The stream at `path`; a non-200 answer is yielded as the plain response."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=60)) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        if response.status_code != 200:
            await response.aread()
            yield response
        else:
            yield Watch(response)
