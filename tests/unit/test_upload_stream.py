"""Reading a multipart upload as a stream (no server needed: the parser works on any byte stream)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from modelreg.services.api.domain_errors import DomainError, InvalidField, UploadTooLarge
from modelreg.services.api.errors import DOMAIN_ERROR_STATUS
from modelreg.services.api.models.openapi import UPLOAD_FORM_SCHEMA
from modelreg.services.api.models.schemas import NamespaceUploadForm
from modelreg.services.api.models.upload import (
    FORM_OVERHEAD_BYTES,
    MAX_FIELD_BYTES,
    read_upload,
    receive_upload,
)
from tests.api_support import chunked, multipart_body

BOUNDARY = "----modelreg-test-boundary"


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    return multipart_body(fields, files, BOUNDARY)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 10**7])
async def test_fields_and_archive_survive_any_chunking(tmp_path, chunk_size) -> None:
    archive = os.urandom(30_000 if chunk_size > 1 else 3_000)
    body = multipart({"name": "bert", "version": "1.0"}, {"file": ("m.tar.gz", archive)})

    received = await read_upload(chunked(body, chunk_size), BOUNDARY, tmp_path, max_archive_bytes=10**6)

    assert received.fields == {"name": "bert", "version": "1.0"}
    assert received.archive.path.read_bytes() == archive
    assert received.archive.sha256 == hashlib.sha256(archive).hexdigest()
    assert received.archive.size == len(archive) and received.archive.filename == "m.tar.gz"
    received.discard()
    assert list(tmp_path.iterdir()) == []


async def test_an_archive_over_the_limit_stops_the_read_and_leaves_no_file(tmp_path) -> None:
    body = multipart({"name": "x"}, {"file": ("m.tar.gz", b"a" * 5_000)})
    consumed = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal consumed
        async for chunk in chunked(body + b"trailing garbage never read" * 1000, 100):
            consumed += len(chunk)
            yield chunk

    with pytest.raises(UploadTooLarge) as caught:
        await read_upload(counting(), BOUNDARY, tmp_path, max_archive_bytes=1_000)

    assert DOMAIN_ERROR_STATUS[type(caught.value)] == 413 and caught.value.code == "archive_too_large"
    assert consumed < 2_000  # refused while streaming, not after reading the body
    assert list(tmp_path.iterdir()) == []


async def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(tmp_path) -> None:
    consumed = 0

    async def never_read() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed += 1
        yield b""

    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    with pytest.raises(UploadTooLarge) as caught:
        await receive_upload(never_read(), content_type, 1_000 + FORM_OVERHEAD_BYTES + 1, tmp_path, 1_000)

    assert caught.value.code == "archive_too_large" and caught.value.details == {"max_archive_bytes": 1_000}
    assert consumed == 0


async def test_a_received_form_without_an_archive_names_the_missing_field(tmp_path) -> None:
    body = multipart({"name": "bert"}, {})
    content_type = f"multipart/form-data; boundary={BOUNDARY}"

    received = await receive_upload(chunked(body, 64), content_type, len(body), tmp_path, 1_000)

    assert received.fields == {"name": "bert"}
    with pytest.raises(InvalidField) as caught:
        received.required_archive()
    assert caught.value.field == "file"


ONE_ARCHIVE = multipart({}, {"file": ("a", b"1")})
END = f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (multipart({"name": "a"}, {}).removesuffix(END), "invalid_multipart"),  # never terminated
        (b"no boundary anywhere", "invalid_multipart"),
        (multipart({"name": "a", "version": "1"}, {}).replace(b'"version"', b'"name"'), "duplicate_field"),
        (ONE_ARCHIVE.removesuffix(END) + ONE_ARCHIVE, "duplicate_field"),
    ],
    ids=["truncated", "garbage", "field-twice", "archive-twice"],
)
async def test_malformed_bodies_are_client_errors_without_leftovers(tmp_path, body, code) -> None:
    with pytest.raises(DomainError) as caught:
        await read_upload(chunked(body, 64), BOUNDARY, tmp_path, max_archive_bytes=100)
    assert DOMAIN_ERROR_STATUS[type(caught.value)] == 400 and caught.value.code == code
    assert list(tmp_path.iterdir()) == []


async def test_text_fields_are_bounded(tmp_path) -> None:
    body = multipart({"name": "n" * (MAX_FIELD_BYTES + 1)}, {})
    with pytest.raises(UploadTooLarge) as caught:
        await read_upload(chunked(body, 4096), BOUNDARY, tmp_path, max_archive_bytes=100)
    assert DOMAIN_ERROR_STATUS[type(caught.value)] == 413 and caught.value.code == "form_field_too_large"


def test_the_documented_form_is_the_validated_form() -> None:
    documented = UPLOAD_FORM_SCHEMA.properties
    assert set(documented) == {"file", *NamespaceUploadForm.__struct_fields__}
    assert UPLOAD_FORM_SCHEMA.required == ["file", "name", "version", "model_format"]
    assert (
        documented["num_cpus"].minimum,
        documented["num_cpus"].maximum,
        documented["num_cpus"].default,
    ) == (
        0.1,
        64,
        1,
    )
    assert (documented["num_gpus"].minimum, documented["num_gpus"].maximum) == (0, 8)
    assert documented["memory_gb"].default == 4
    assert sorted(documented["model_format"].enum) == ["huggingface", "onnx", "pytorch", "safetensors"]
    assert documented["file"].format.value == "binary"
