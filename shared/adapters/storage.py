"""Archive storage: a local directory by default, or an S3-compatible bucket when configured.

Saving streams the upload while hashing it; fetching understands file://, plain paths and s3:// URLs
whichever storage wrote them, but only inside the archive root, the allowed roots and the bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from shared.settings import Settings


class ArchiveTooLargeError(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"archive exceeds {limit} bytes")
        self.limit = limit


class ArchiveNotFoundError(FileNotFoundError):
    pass


class ArchiveLocationRefusedError(PermissionError):
    """The URL is outside where archives may be fetched from (archive root, allowed roots, bucket)."""


async def spool(chunks: AsyncIterable[bytes], directory: Path, max_bytes: int) -> tuple[Path, str, int]:
    """Write a stream to a temporary file in `directory`, hashing as it goes; refuses more than max_bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=directory, suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ArchiveTooLargeError(max_bytes)
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


class _S3Client(Protocol):
    """The calls made on a boto3 S3 client (boto3 ships no type information)."""

    def upload_file(self, Filename: str, Bucket: str, Key: str) -> None: ...

    def download_file(self, Bucket: str, Key: str, Filename: str) -> None: ...

    def delete_object(self, *, Bucket: str, Key: str) -> object: ...

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...


def _s3_client(settings: Settings) -> _S3Client:
    import boto3

    client: _S3Client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url)
    return client


def _local_path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(url)


class ArchiveStorage:
    """Stores archives under `{namespace}/{model_id}.tar.gz` in the configured place."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.archive_root or ".modelreg/archives").resolve()

    @property
    def readable_roots(self) -> tuple[Path, ...]:
        """Directories local archives may be fetched from: the archive root and the allowed roots."""
        extra = [part.strip() for part in self.settings.archive_allowed_roots.split(",") if part.strip()]
        return (self.root, *(Path(root).resolve() for root in extra))

    def _readable_local_path(self, url: str) -> Path:
        # Resolved first: a symlink or ".." inside an allowed root must not lead out of it.
        source = _local_path(url).resolve()
        if not any(source.is_relative_to(root) for root in self.readable_roots):
            raise ArchiveLocationRefusedError(f"{url} is outside the archive root and the allowed roots")
        return source

    @property
    def uses_s3(self) -> bool:
        return bool(self.settings.s3_bucket)

    @property
    def incoming_dir(self) -> Path:
        """Where uploads are spooled: inside the root, so a local save is an atomic rename."""
        return self.root / ".incoming"

    async def save(self, spooled: Path, namespace_id: str, model_id: str) -> str:
        """Move a spooled file into storage; returns its URL."""
        relative = f"{namespace_id}/{model_id}.tar.gz"
        if bucket := self.settings.s3_bucket:  # self.uses_s3
            await asyncio.to_thread(_s3_client(self.settings).upload_file, str(spooled), bucket, relative)
            spooled.unlink(missing_ok=True)
            return f"s3://{bucket}/{relative}"
        target = self.root / relative
        if not target.resolve().is_relative_to(self.root) or target.parent.parent != self.root:
            raise ValueError(f"archive path {relative!r} leaves the archive root")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spooled, target)
        return target.as_uri()

    def check_fetchable(self, url: str) -> None:
        """Raise ArchiveLocationRefusedError unless `url` is in the configured bucket or directories."""
        parsed = urlparse(url)
        if parsed.scheme == "s3":
            if not self.uses_s3 or parsed.netloc != self.settings.s3_bucket:
                raise ArchiveLocationRefusedError(f"{url} is not in the configured bucket")
        elif parsed.scheme in ("", "file"):
            self._readable_local_path(url)
        else:
            raise ArchiveLocationRefusedError(f"unsupported archive URL scheme {parsed.scheme!r}: {url}")

    async def fetch(self, url: str, destination: Path) -> Path:
        """Copy the archive at `url` to `destination`; only from the configured bucket and directories."""
        self.check_fetchable(url)
        destination.parent.mkdir(parents=True, exist_ok=True)
        parsed = urlparse(url)
        if parsed.scheme == "s3":
            import botocore.exceptions

            try:
                await asyncio.to_thread(
                    _s3_client(self.settings).download_file,
                    parsed.netloc,
                    parsed.path.lstrip("/"),
                    str(destination),
                )
            except botocore.exceptions.ClientError as exc:
                raise ArchiveNotFoundError(f"{url}: {exc}") from None
            return destination
        source = self._readable_local_path(url)
        if not source.is_file():
            raise ArchiveNotFoundError(f"no archive at {url}")
        await asyncio.to_thread(shutil.copyfile, source, destination)
        return destination

    def url_for(self, namespace_id: str, model_id: str) -> str:
        """The URL `save()` gives the archive of this model."""
        relative = f"{namespace_id}/{model_id}.tar.gz"
        if self.uses_s3:
            return f"s3://{self.settings.s3_bucket}/{relative}"
        return (self.root / relative).as_uri()

    def owns(self, url: str, namespace_id: str, model_id: str) -> bool:
        """Whether `url` is exactly the archive this storage wrote for this model (and so may delete).

        Exact equality, not "somewhere under the root": a record registered with
        `file:///{root}/team-a/../team-b/m.tar.gz` must never reach team-b's archive.
        """
        if url != self.url_for(namespace_id, model_id):
            return False
        if self.uses_s3:
            return True
        return _local_path(url).resolve().parent.parent == self.root

    async def delete(self, url: str, namespace_id: str, model_id: str) -> None:
        """Remove this model's archive; anything `owns()` refuses is left alone."""
        if not self.owns(url, namespace_id, model_id):
            return
        if self.uses_s3:
            parsed = urlparse(url)
            await asyncio.to_thread(
                _s3_client(self.settings).delete_object, Bucket=parsed.netloc, Key=parsed.path.lstrip("/")
            )
            return
        _local_path(url).unlink(missing_ok=True)

    async def read_chunks(self, url: str, chunk_bytes: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """The archive at `url` as a stream of chunks; only from the configured bucket and directories.

        Raises ArchiveNotFoundError (before the first chunk) when it is missing.
        """
        self.check_fetchable(url)
        parsed = urlparse(url)
        if parsed.scheme == "s3":
            import botocore.exceptions

            try:
                answer = await asyncio.to_thread(
                    _s3_client(self.settings).get_object, Bucket=parsed.netloc, Key=parsed.path.lstrip("/")
                )
            except botocore.exceptions.ClientError as exc:
                raise ArchiveNotFoundError(f"{url}: {exc}") from None
            body = answer["Body"]
            try:
                while chunk := await asyncio.to_thread(body.read, chunk_bytes):
                    yield chunk
            finally:
                body.close()
            return
        source = self._readable_local_path(url)
        if not source.is_file():
            raise ArchiveNotFoundError(f"no archive at {url}")
        with source.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, chunk_bytes):
                yield chunk
