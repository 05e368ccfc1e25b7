"""Helpers for API tests: archives, authenticated clients, uploads."""

from __future__ import annotations

import functools
import io
import tarfile
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
from beanie import init_beanie
from litestar.testing import AsyncTestClient

from modelreg.services.api.app import create_app
from modelreg.services.testing.infra import Infra
from modelreg.shared.adapters import kafka, mongo
from modelreg.shared.documents import DOCUMENT_MODELS
from modelreg.shared.settings import Settings


def make_archive(files: Mapping[str, bytes] | None = None) -> bytes:
    """A .tar.gz holding `files` (name → content)."""
    files = files if files is not None else {"model.onnx": b"\x08\x01onnx-bytes", "config.json": b"{}"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def make_archive_with(member: tarfile.TarInfo, content: bytes = b"") -> bytes:
    """A .tar.gz with one hand-made member (links, absolute paths, devices...)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return buffer.getvalue()


def multipart_body(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str) -> bytes:
    """A multipart/form-data body, built by hand so tests control every byte."""
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, content) in files.items():
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/gzip\r\n\r\n"
        )
        parts.append(header.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


async def chunked(body: bytes, size: int) -> AsyncIterator[bytes]:
    """`body` as a request stream of `size`-byte chunks."""
    for start in range(0, len(body), size):
        yield body[start : start + size]
    yield b""  # Litestar ends a request stream with an empty chunk


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def api_client(settings: Settings, key: str | None = None) -> AsyncIterator[AsyncTestClient]:
    """The real app (lifespans included) against the test's MongoDB and Kafka, authenticated with `key`."""
    async with AsyncTestClient(app=create_app(settings), timeout=60) as client:
        if key is not None:
            client.headers.update(bearer(key))
        yield client


@dataclass
class SharedApi:
    """One app, database and set of topics that a module's read-only tests share (see `shared_api`)."""

    settings: Settings
    db: Any  # the tests' own handle on the database, not the app's
    key: str | None
    app_client: AsyncTestClient  # authenticated with `key`, if any

    async def client(self) -> AsyncTestClient:
        """The app's client, with Beanie bound to this app's database again: Beanie binds its documents
        process-wide to the database set up last, so a test of the module that started its own app moved
        them (to a database now dropped)."""
        database = self.app_client.app.state.mongo_client[self.settings.mongodb_database]
        if any(model.get_pymongo_collection().database != database for model in DOCUMENT_MODELS):
            # In the app's own event loop (the test client's portal thread), where its MongoDB client lives.
            self.app_client.blocking_portal.call(
                functools.partial(
                    init_beanie, database=database, document_models=DOCUMENT_MODELS, skip_indexes=True
                )
            )
        return self.app_client

    @asynccontextmanager
    async def own_namespace(self) -> AsyncIterator[tuple[str, str]]:
        """A fresh namespace and a key for it alone, set on the shared client while the test runs: what a
        test writes there no other test of the module sees."""
        from tests.conftest import insert_api_key

        client = await self.client()
        namespace = f"ns_{uuid.uuid4().hex[:12]}"
        key = await insert_api_key(self.db, self.settings, namespace)
        client.headers.update(bearer(key))
        try:
            yield namespace, key
        finally:
            del client.headers["Authorization"]


@asynccontextmanager
async def shared_api(
    infra: Infra,
    workdir: Path,
    *namespaces: str,
    admin: bool = False,
    authenticated: bool = True,
    **overrides: Any,
) -> AsyncIterator[SharedApi]:
    """What the `settings`, `topics`, `db`, `make_key` and `client` fixtures build for one test, built once
    for a module's tests that only read (a module-scoped fixture seeds it): each test saves the ~1 s of
    a new database, its indexes, topics and the app's start. `overrides` are settings (limits...)."""
    from tests.conftest import insert_api_key, make_settings

    settings = make_settings(
        infra,
        archive_root=str(workdir / "archives"),
        bridge_work_dir=str(workdir / "bridge"),
        **overrides,
    )
    await kafka.ensure_topics(settings, [settings.events_topic, settings.dlq_topic, settings.commands_topic])
    mongo_client = await mongo.connect(settings)
    db = mongo_client[settings.mongodb_database]
    try:
        key = await insert_api_key(db, settings, *namespaces, admin=admin) if authenticated else None
        async with api_client(settings, key) as client:
            yield SharedApi(settings, db, key, client)
    finally:
        await mongo_client.drop_database(settings.mongodb_database)
        await mongo_client.close()


def upload_form(
    name: str = "resnet", version: str = "1.0.0", model_format: str = "onnx", **extra: Any
) -> dict[str, str]:
    form = {"name": name, "version": version, "model_format": model_format}
    form.update({k: str(v) for k, v in extra.items()})
    return form


async def upload(
    client: AsyncTestClient,
    namespace_id: str,
    archive: bytes | None = None,
    filename: str = "model.tar.gz",
    **form: Any,
):
    files = {"file": (filename, archive if archive is not None else make_archive(), "application/gzip")}
    return await client.post(f"/v1/namespaces/{namespace_id}/models", data=upload_form(**form), files=files)


@asynccontextmanager
async def api_process(settings: Settings, log_path: Path, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """`modelreg api` as its own process (requests really concurrent, unlike the in-process test client),
    and an authenticated client for it."""
    from modelreg.services.devstack.embedded import free_port
    from modelreg.services.testing.processes import ServiceProcess

    served = msgspec.structs.replace(settings, api_port=free_port())
    process = ServiceProcess("api", served, log_path).start()
    try:
        await process.wait_listening(served.api_port)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{served.api_port}", headers=bearer(key), timeout=60
        ) as client:
            yield client
    finally:
        process.stop()
