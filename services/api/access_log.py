"""One access log line per HTTP request, and the request id that ties it to the request's other log lines.

The id is the client's `X-Request-ID` when it is sane (1 to 128 visible ASCII characters: it goes into logs
and back into a header), otherwise a new one; it is bound into structlog's context for the request and echoed
in the response's `X-Request-ID`. The line names the route template, not the raw path, so ids in URLs stay
out of the log like they stay out of the metrics; uvicorn's own access log is off (services/api/server.py).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")

log = structlog.get_logger("modelreg.api.access")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's request id when it is sane, else a new one."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER and SANE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class AccessLog:
    """Wraps the app's ASGI handler, outermost, so unrouted requests (404, 405) are logged too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        method = scope["method"]
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception that escapes it is a server error

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_request_id)
            finally:
                key_prefix = scope.get("auth")  # set by the API key middleware once a key is accepted
                log.info(
                    "request",
                    method=method,
                    route=scope.get("path_template"),  # None when no route matched
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    key_prefix=key_prefix if isinstance(key_prefix, str) else None,
                )
