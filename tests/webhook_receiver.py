"""A local webhook receiver for the tests: records every request, answers what the test says."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)

    def verified(self, secret: str) -> Any:
        """The payload, verified with the standardwebhooks package (raises if the signature is wrong)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    """`status` is what it answers (settable while running); `delay_s` how long it takes to answer."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.status = 204
        self.delay_s = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                time.sleep(receiver.delay_s)
                status = receiver.status
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.requests.append(
                            Received({k.lower(): v for k, v in self.headers.items()}, body)
                        )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening (connections are refused until another receiver takes the port)."""
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def unique(self) -> list[Received]:
        """Accepted requests, each webhook-id once (what a deduplicating receiver keeps)."""
        seen: set[str] = set()
        kept = []
        for request in self.accepted():
            if request.webhook_id not in seen:
                seen.add(request.webhook_id)
                kept.append(request)
        return kept
