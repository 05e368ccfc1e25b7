"""Reading a model upload (multipart/form-data) as a stream: the archive goes straight to a spool file.

Litestar's form parsing would buffer the whole file before the handler runs; here the archive part is hashed
and written as it arrives, so an oversized upload is refused after `max_archive_bytes`, not after the whole
body, and memory stays flat whatever the archive's size.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TypeAlias

import msgspec
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from modelreg.services.api.domain_errors import InvalidField, InvalidUpload, UnsupportedUpload, UploadTooLarge
from modelreg.shared.adapters.storage import ArchiveTooLargeError, spool

ARCHIVE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 32
# Room for the text fields and part headers on top of the archive, for the Content-Length check.
FORM_OVERHEAD_BYTES = MAX_PARTS * (MAX_FIELD_BYTES + 8 * 1024)

ParserEvent: TypeAlias = MultipartSegment | bytes | bytearray | None


class SpooledArchive(msgspec.Struct, frozen=True):
    path: Path
    sha256: str
    size: int
    filename: str


class ReceivedUpload(msgspec.Struct):
    fields: dict[str, str]
    archive: SpooledArchive | None = None

    def discard(self) -> None:
        if self.archive is not None:
            self.archive.path.unlink(missing_ok=True)

    def required_archive(self) -> SpooledArchive:
        """The spooled archive; InvalidField on the `file` field when the form had none."""
        if self.archive is None:
            raise InvalidField("the model archive is missing (curl -F file=@model.tar.gz)", ARCHIVE_FIELD)
        return self.archive


def multipart_boundary(content_type: str | None) -> str:
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != "multipart/form-data":
        raise UnsupportedUpload(
            "The upload must be multipart/form-data (e.g. curl -F file=@model.tar.gz -F name=...)"
        )
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value.strip('"'):
            return value.strip('"')
    raise InvalidUpload("multipart/form-data without a boundary", code="invalid_multipart")


async def receive_upload(
    stream: AsyncIterator[bytes],
    content_type: str | None,
    content_length: int | None,
    spool_dir: Path,
    max_archive_bytes: int,
) -> ReceivedUpload:
    """A model upload request's body read by `read_upload`, after the checks that need no body.

    A body that is not multipart/form-data is refused, and so is one whose Content-Length already says it is
    larger than the archive limit plus the room the form's other parts may take (before a byte is read).
    """
    boundary = multipart_boundary(content_type)
    if content_length is not None and content_length > max_archive_bytes + FORM_OVERHEAD_BYTES:
        raise UploadTooLarge(
            f"The upload exceeds the archive limit of {max_archive_bytes} bytes",
            code="archive_too_large",
            details={"max_archive_bytes": max_archive_bytes},
        )
    return await read_upload(stream, boundary, spool_dir, max_archive_bytes)


async def _parser_events(stream: AsyncIterator[bytes], boundary: str) -> AsyncGenerator[ParserEvent, None]:
    with PushMultipartParser(
        boundary, max_segment_count=MAX_PARTS, max_header_count=8, max_header_size=4096
    ) as parser:
        async for chunk in stream:
            if not chunk:
                continue
            for event in parser.parse(chunk):
                yield event
            if parser.closed:
                break


async def _segment_body(events: AsyncIterator[ParserEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        if event is None:
            return
        yield bytes(event)


async def read_upload(
    stream: AsyncIterator[bytes], boundary: str, spool_dir: Path, max_archive_bytes: int
) -> ReceivedUpload:
    """Text fields in memory (each at most MAX_FIELD_BYTES), the `file` part spooled and hashed.

    The caller owns the spooled file once this returns; on any error it is already removed.
    """
    received = ReceivedUpload(fields={})
    events = _parser_events(stream, boundary)
    try:
        async for event in events:
            if not isinstance(event, MultipartSegment):
                continue  # the parser only yields data after a segment header, which is consumed below
            name = event.name or ""
            if event.filename is not None and name == ARCHIVE_FIELD:
                if received.archive is not None:
                    raise InvalidUpload(
                        "Only one archive may be uploaded", code="duplicate_field", details={"field": name}
                    )
                path, digest, size = await spool(_segment_body(events), spool_dir, max_archive_bytes)
                received.archive = SpooledArchive(
                    path=path, sha256=digest, size=size, filename=event.filename
                )
            else:
                if name in received.fields:
                    raise InvalidUpload(
                        f"Field {name!r} was sent twice", code="duplicate_field", details={"field": name}
                    )
                received.fields[name] = await _read_field(name, _segment_body(events), event.charset)
    except ArchiveTooLargeError as exc:
        received.discard()
        raise UploadTooLarge(
            f"The archive exceeds the limit of {exc.limit} bytes",
            code="archive_too_large",
            details={"max_archive_bytes": exc.limit},
        ) from None
    except ParserLimitReached as exc:
        received.discard()
        raise UploadTooLarge(f"Too many or too large form parts: {exc}", code="form_too_large") from None
    except ParserError as exc:
        received.discard()
        raise InvalidUpload(f"Malformed multipart/form-data body: {exc}", code="invalid_multipart") from None
    except BaseException:
        received.discard()
        raise
    finally:
        await events.aclose()
    return received


async def _read_field(name: str, body: AsyncIterator[bytes], charset: str | None) -> str:
    data = bytearray()
    async for chunk in body:
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise UploadTooLarge(
                f"Form field {name!r} exceeds {MAX_FIELD_BYTES} bytes",
                code="form_field_too_large",
                details={"field": name, "max_bytes": MAX_FIELD_BYTES},
            )
    try:
        return data.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise InvalidUpload(f"Form field {name!r} is not valid text", code="invalid_field_encoding") from None
