"""ASGI middleware at the edge of the API: HEAD answered by the GET handlers, and a body read deadline.

Litestar routes HEAD only to handlers declared for it; every GET route here should answer HEAD with the
same status and headers, so HEAD is run as GET and the body dropped (uvicorn drops it too; the in-process
test client does not). The body deadline keeps a client from holding a request open by trickling its body:
the body must arrive at `min_rate` bytes per second on average after a `grace` period, whatever its size.
"""

from __future__ import annotations

import asyncio
import time

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.status_codes import HTTP_408_REQUEST_TIMEOUT
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send


def body_deadline(started_at: float, received_bytes: int, grace_s: float, min_rate: float) -> float:
    """When the next body chunk must have arrived: slower than `min_rate` on average after the grace."""
    return started_at + grace_s + received_bytes / min_rate


class HeadAsGet:
    """Wraps the app's ASGI handler before routing (Litestar's router answers 405 to HEAD on a GET route)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        as_get = scope.copy()
        as_get["method"] = "GET"
        try:
            await self.app(as_get, receive, send_headers_only)
        finally:
            # What routing and authentication found (route template, key) holds for the HEAD request too.
            scope.update(as_get)
            scope["method"] = "HEAD"


class BodyDeadlineMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, grace_s: float, min_rate_bytes_s: float) -> None:
        self.grace_s = grace_s
        self.min_rate = min_rate_bytes_s

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started_at = time.monotonic()
        received = 0
        body_complete = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal received, body_complete
            if body_complete:  # later receives only wait for a disconnect: no deadline
                return await receive()
            remaining = body_deadline(started_at, received, self.grace_s, self.min_rate) - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                raise HTTPException(
                    status_code=HTTP_408_REQUEST_TIMEOUT,
                    detail=f"The request body arrived slower than {self.min_rate:g} bytes/s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
            return message

        await next_app(scope, receive_in_time, send)
