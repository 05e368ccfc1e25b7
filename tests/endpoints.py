"""Local HTTP servers standing in for models' Ray Serve endpoints (the inference route's tests and bench)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandInEndpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.requests = 0
        self.seen_headers: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    """POST: echoes the JSON body with the server's name. Paths: /slow (sleeps 2 s), /fail (500),
    /refuse (422 with the endpoint's own body), /stream (a chunked answer in three parts)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Serve's proxy
    server: StandInEndpoint

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", self.server.name)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.requests += 1
        self.server.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        path = self.path.rsplit("/", 1)[-1]
        if path == "slow":
            time.sleep(2)
        if path == "fail":
            self._send(500, b"boom", "text/plain")
            return
        if path == "refuse":
            self._send(422, json.dumps({"error": "input x missing"}).encode())
            return
        if path == "stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"part": 1}\n', b'{"part": 2}\n', b'{"part": 3}\n'):
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        answer = {"served_by": self.server.name, "echo": json.loads(body) if body else None}
        self._send(200, json.dumps(answer).encode())


@contextmanager
def stand_in_endpoint(name: str) -> Iterator[StandInEndpoint]:
    server = StandInEndpoint(name)
    thread = threading.Thread(target=server.serve_forever, name=f"endpoint-{name}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
