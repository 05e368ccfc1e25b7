"""Running the API under uvicorn with deadlines a public server needs.

uvicorn bounds keep-alive idle time and concurrency, but starts no timer between accepting a connection and
receiving a complete request head, so a client that connects and sends nothing (or a header a byte at a
time) holds a connection for ever. `HeaderDeadlineProtocol` adds that one timer to uvicorn's own protocol;
body read deadlines are an ASGI middleware (services/api/limits.py).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelreg.shared.settings import Settings

log = structlog.get_logger("modelreg.api")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose request head has not fully arrived `header_timeout_s` after it began."""

    header_timeout_s: float = 10.0
    _header_deadline: asyncio.TimerHandle | None  # set once the connection is made

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        deadline = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        log.info("connection closed: request head not received in time", client=self.client)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()  # nothing received yet

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def protocol_class(settings: Settings) -> type[HeaderDeadlineProtocol]:
    return type(
        "ConfiguredHeaderDeadlineProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout_s": settings.api_header_timeout_s},
    )


def uvicorn_config(app: Litestar, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        http=protocol_class(settings),
        # Beyond this many connections and requests in flight, uvicorn answers 503 at once.
        limit_concurrency=settings.api_max_concurrency,
        timeout_keep_alive=settings.api_keep_alive_timeout_s,
        log_config=None,
        access_log=False,  # services/api/access_log.py writes one structured line per request instead
    )


def serve(app: Litestar, settings: Settings) -> None:
    if not settings.api_key_pepper:
        log.warning(
            "MODELREG_API_KEY_PEPPER is empty: stored key hashes are not keyed with a secret; set one in "
            "production (changing it later invalidates every key)"
        )
    # uvicorn shuts down gracefully on SIGINT, then raises it again for its caller: that is us, done.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(uvicorn_config(app, settings)).run()
