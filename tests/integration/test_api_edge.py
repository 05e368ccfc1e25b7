"""The API's edge against hostile input: ids, foreign archives, HEAD, and slow or silent clients."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from modelreg.services.devstack.embedded import free_port
from modelreg.services.testing.processes import ServiceProcess
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.api_keys import key_prefix
from tests.api_support import api_client, make_archive, upload
from tests.conftest import insert_api_key, make_settings
from tests.factories import seed_model_document
from tests.integration.test_api_models import seed_validator
from tests.integration.test_api_upload import stored_files


@pytest.fixture
async def admin(topics, db, make_key):
    async with api_client(topics, await make_key(admin=True)) as client:
        yield client


def assert_path_validation_error(response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    seed_validator("HTTPValidationError").validate(body)
    assert body["detail"][0]["loc"] == ["path", field], body


@pytest.mark.parametrize("namespace", ["%E2%80%AEteam", "%ff", "%C3%A9quipe", ".incoming", "-rf"])
async def test_ids_outside_the_rule_are_a_422_and_store_nothing(admin, db, settings, namespace) -> None:
    response = await upload(admin, namespace, make_archive(), name="m", version="1")
    assert_path_validation_error(response, "namespace_id")
    assert await db.custom_models.count_documents({}) == 0
    assert stored_files(settings) == []

    for response in (
        await admin.get(f"/v1/namespaces/{namespace}/models"),
        await admin.get(f"/v1/namespaces/{namespace}/models/m1"),
        await admin.post(f"/v1/namespaces/{namespace}/models/m1/deploy"),
        await admin.delete(f"/v1/namespaces/{namespace}/models/m1"),
    ):
        assert_path_validation_error(response, "namespace_id")
    assert_path_validation_error(await admin.get("/v1/namespaces/ns_a/models/%ff"), "model_id")


async def test_deleting_a_model_never_touches_an_archive_it_does_not_own(admin, db, settings) -> None:
    root = Path(settings.archive_root).resolve()
    victim = root / "team-b" / "model_victim.tar.gz"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(make_archive())
    traversal = f"file://{root}/team-a/../team-b/model_victim.tar.gz"
    await db.custom_models.insert_one(
        seed_model_document("team-a", "m_traversal", model_archive_url=traversal)
    )

    response = await admin.delete("/v1/namespaces/team-a/models/m_traversal")

    assert response.status_code == 200 and response.json()["deleted"] is True
    assert victim.is_file()


async def test_deleting_an_uploaded_model_removes_its_own_archive(admin, db, settings) -> None:
    uploaded = (await upload(admin, "team-a", make_archive(), name="m", version="1")).json()
    assert len(stored_files(settings)) == 1

    response = await admin.delete(f"/v1/namespaces/team-a/models/{uploaded['model_id']}")

    assert response.json()["deleted"] is True and stored_files(settings) == []


async def test_head_answers_like_get_without_a_body(admin, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    for path in ("/v1/namespaces/ns_a/models/m1", "/v1/namespaces/ns_a/models", "/health/live"):
        get = await admin.get(path)
        head = await admin.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers.get("etag") == get.headers.get("etag")
        assert head.headers["content-length"] == str(len(get.content))
    assert (await admin.head("/v1/namespaces/ns_a/models/nope")).status_code == 404


# --- a real server: uvicorn's connection handling and the deadlines -----------------------------------


BODY_GRACE_S = 1.0


@pytest.fixture(scope="module")
async def api_server(infra, tmp_path_factory):
    """One API process for the wire-level tests of this module: starting one takes seconds."""
    settings = make_settings(
        infra,
        archive_root=str(tmp_path_factory.mktemp("archives")),
        api_port=free_port(),
        api_header_timeout_s=1.0,
        api_body_grace_s=BODY_GRACE_S,
        api_body_min_rate_bytes_s=1000.0,
    )
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    client = await mongo.connect(settings)
    database = client[settings.mongodb_database]
    key = await insert_api_key(database, settings, admin=True)
    process = ServiceProcess("api", settings, tmp_path_factory.mktemp("api") / "api.log").start()
    port = settings.api_port
    await process.wait_listening(port)
    yield process, port, key, database
    process.stop()
    await client.drop_database(settings.mongodb_database)
    await client.close()


@pytest.fixture
async def api_process(api_server):
    process, port, key, database = api_server
    await database.custom_models.delete_many({})  # each test starts without models
    return process, port, key


@pytest.fixture
def api_db(api_server):
    """The database of the API process."""
    return api_server[3]


async def read_all(reader: asyncio.StreamReader) -> bytes:
    # The bound only keeps a broken server from hanging the test; the server is expected to act long before.
    return await asyncio.wait_for(reader.read(), timeout=60)


async def test_a_silent_connection_is_closed(api_process) -> None:
    _, port, _ = api_process
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await read_all(reader) == b""  # closed by the server, nothing sent
    writer.close()


async def test_a_request_head_sent_byte_by_byte_is_cut_off(api_process) -> None:
    _, port, _ = api_process
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
    closed = False
    for byte in head:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, OSError):
            closed = True
            break
        await asyncio.sleep(0.05)
        if reader.at_eof():
            closed = True
            break
    assert closed or await read_all(reader) == b""
    writer.close()


async def test_a_trickled_body_gets_408_and_the_connection_closes(api_process, api_db) -> None:
    _, port, key = api_process
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body_length = 10_000
    writer.write(
        f"POST /v1/namespaces/ns_a/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {body_length}\r\n\r\n".encode()
    )
    started = time.monotonic()
    # A byte every 0.1 s (10 B/s, far below the 1000 B/s asked after the 1 s grace) until shortly before the
    # server's deadline; then only read. A byte landing after the server closed would draw a TCP reset that
    # can drop the unread 408 on the client's side, so the trickle stops a little ahead of the deadline.
    sent = 0
    while time.monotonic() - started < BODY_GRACE_S - 0.25:
        writer.write(b"x")
        await writer.drain()
        sent += 1
        await asyncio.sleep(0.1)
    response = await read_all(reader)
    assert response.startswith(b"HTTP/1.1 408"), response[:300]
    assert b'"RequestTimeoutError"' in response
    assert sent < body_length
    assert time.monotonic() - started >= BODY_GRACE_S  # cut at the deadline, not at the last byte's pause
    assert await api_db.custom_models.count_documents({}) == 0
    writer.close()


async def test_head_over_the_wire_the_access_log_and_the_empty_pepper_warning(api_process, api_db) -> None:
    process, port, key = api_process
    await api_db.custom_models.insert_one(seed_model_document("ns_a", "m1"))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"HEAD /v1/namespaces/ns_a/models/m1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "X-Request-ID: trace-1\r\nConnection: close\r\n\r\n".encode()
    )
    response = await read_all(reader)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"etag:" in head.lower() and body == b""
    assert b"x-request-id: trace-1\r\n" in head.lower() + b"\r\n"
    writer.close()
    assert any("MODELREG_API_KEY_PEPPER is empty" in line.get("event", "") for line in process.log_lines())
    # One structured access line per request (uvicorn's own access log is off), the route as its template.
    [access] = [line for line in process.events_logged("request") if line.get("request_id") == "trace-1"]
    assert access["logger"] == "modelreg.api.access" and access["level"] == "info"
    assert (access["method"], access["route"], access["status"]) == (
        "HEAD",
        "/v1/namespaces/{namespace_id}/models/{model_id}",
        200,
    )
    assert access["key_prefix"] == key_prefix(key) and access["duration_ms"] >= 0
    assert not [line for line in process.log_lines() if line.get("logger", "").startswith("uvicorn.access")]


async def test_a_name_with_a_slash_reaches_its_aliases_over_the_wire(api_process, api_db) -> None:
    # uvicorn decodes %2F in the path before routing; the alias routes still see the name as one segment.
    _, port, key = api_process
    name = "org/bert%base"
    await api_db.custom_models.insert_one(seed_model_document("ns_a", "hf", name=name, version="1"))
    headers = {"Authorization": f"Bearer {key}"}
    aliases = "/v1/namespaces/ns_a/names/org%2Fbert%25base/aliases"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        put = await client.put(f"{aliases}/edge", json={"model_id": "hf"})
        assert put.status_code == 200, put.text
        assert put.json()["alias"]["name"] == name
        listed = (await client.get(aliases)).json()
        assert listed["name"] == name and [a["alias"] for a in listed["aliases"]] == ["edge"]
        # Sent unencoded, the slash is a separator: no such route.
        assert (await client.get("/v1/namespaces/ns_a/names/org/bert%25base/aliases")).status_code == 404
        assert (await client.delete(f"{aliases}/edge")).status_code == 200
