"""The access log: one line per request with the route template, and the request id bound and echoed."""

from __future__ import annotations

import re

import pytest
import structlog
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from modelreg.services.api.access_log import AccessLog, request_id_from
from modelreg.services.api.limits import HeadAsGet

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@get("/things/{thing_id:str}")
async def read_thing(thing_id: str) -> dict[str, str]:
    structlog.get_logger("modelreg.api").info("reading a thing", thing_id=thing_id)
    return {"thing_id": thing_id}


@get("/broken")
async def broken() -> None:
    raise RuntimeError("boom")


def make_app() -> Litestar:
    app = Litestar(route_handlers=[read_thing, broken], logging_config=None)
    app.asgi_handler = AccessLog(HeadAsGet(app.asgi_handler))
    return app


@pytest.fixture
def logs():
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        yield captured


def access_lines(logs: list[dict]) -> list[dict]:
    return [line for line in logs if line["event"] == "request"]


async def test_one_line_per_request_with_the_route_template_and_the_request_id_echoed(logs) -> None:
    async with AsyncTestClient(app=make_app()) as client:
        response = await client.get("/things/t-42")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    [line] = access_lines(logs)
    assert line["method"] == "GET" and line["status"] == 200
    assert line["route"] == "/things/{thing_id}"  # the template: ids stay out of the log
    assert "t-42" not in str(line)
    assert line["request_id"] == request_id and line["key_prefix"] is None
    assert line["duration_ms"] >= 0
    # Lines logged while handling the request carry the same id.
    [inner] = [entry for entry in logs if entry["event"] == "reading a thing"]
    assert inner["request_id"] == request_id


async def test_a_sane_incoming_request_id_is_kept(logs) -> None:
    async with AsyncTestClient(app=make_app()) as client:
        response = await client.get("/things/t1", headers={"X-Request-ID": "trace-abc:123"})
    assert response.headers["x-request-id"] == "trace-abc:123"
    assert access_lines(logs)[0]["request_id"] == "trace-abc:123"


@pytest.mark.parametrize(
    "incoming",
    [b"", b"x" * 129, b"has space", b"tab\there", "caf\u00e9".encode(), b"del\x7f"],
)
def test_an_insane_incoming_request_id_is_replaced(incoming: bytes) -> None:
    assert GENERATED_ID.fullmatch(request_id_from([(b"x-request-id", incoming)]))


def test_the_longest_accepted_request_id_is_128_visible_characters() -> None:
    assert request_id_from([(b"X-Request-ID", b"~" * 128)]) == "~" * 128


async def test_unrouted_head_and_failing_requests_are_logged_too(logs) -> None:
    async with AsyncTestClient(app=make_app()) as client:
        missing = await client.get("/nowhere")
        head = await client.head("/things/t1")
        failed = await client.get("/broken")
    assert (missing.status_code, head.status_code, failed.status_code) == (404, 200, 500)
    lines = access_lines(logs)
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("GET", None, 404),
        ("HEAD", "/things/{thing_id}", 200),
        ("GET", "/broken", 500),
    ]
    assert all("x-request-id" in response.headers for response in (missing, head, failed))
