"""Archive storage: a local directory by default, or an S3-compatible bucket when configured.

Saving streams the upload while hashing it; fetching understands file://, plain paths and s3:// URLs
whichever storage wrote them, but only inside the archive root, the allowed roots and the bucket; and, for
Serve replicas on other machines, the registry's archive route under MODELREG_BRIDGE_ARCHIVE_REGISTRY_URL
(with the read key MODELREG_BRIDGE_ARCHIVE_REGISTRY_KEY; docs/clusters.md).
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

import msgspec

from modelreg.shared.settings import Settings


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

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]: ...

    def generate_presigned_url(
        self, ClientMethod: str, Params: dict[str, Any], ExpiresIn: int, HttpMethod: str
    ) -> str: ...


def _s3_client(settings: Settings) -> _S3Client:
    import boto3

    client: _S3Client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url)
    return client


def _local_path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(url)


class StagedUpload(msgspec.Struct, frozen=True):
    """What storage holds for a presigned upload: its size and the Content-Type it was stored with."""

    size: int
    content_type: str | None
    etag: str | None


UPLOADS_PREFIX = ".uploads"


def staging_key(upload_id: str) -> str:
    """Where a presigned upload's bytes wait for confirmation: outside every namespace (ids never start
    with '.'), `.uploads/{upload_id}.tar.gz` in the bucket or under the archive root."""
    return f"{UPLOADS_PREFIX}/{upload_id}.tar.gz"


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

    def _from_registry(self, url: str) -> bool:
        base = (self.settings.bridge_archive_registry_url or "").rstrip("/")
        return bool(base) and url.startswith(base + "/v1/namespaces/") and url.endswith("/archive")

    def check_fetchable(self, url: str) -> None:
        """Raise ArchiveLocationRefusedError unless `url` is in the configured bucket or directories."""
        parsed = urlparse(url)
        if self._from_registry(url):
            return
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
        if self._from_registry(url):
            await self._fetch_from_registry(url, destination)
            return destination
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

    async def _fetch_from_registry(self, url: str, destination: Path) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.settings.bridge_archive_registry_key}"}
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0), follow_redirects=False) as client:
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise ArchiveNotFoundError(f"{url} answered {response.status_code}")
                with destination.open("wb") as handle:
                    async for chunk in response.aiter_bytes(1024 * 1024):
                        await asyncio.to_thread(handle.write, chunk)

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

    async def archive_size(self, url: str) -> int:
        """The size in bytes of the archive at `url`; only in the configured bucket and directories."""
        self.check_fetchable(url)
        parsed = urlparse(url)
        if parsed.scheme == "s3":
            import botocore.exceptions

            try:
                head = await asyncio.to_thread(
                    _s3_client(self.settings).head_object, Bucket=parsed.netloc, Key=parsed.path.lstrip("/")
                )
            except botocore.exceptions.ClientError as exc:
                raise ArchiveNotFoundError(f"{url}: {exc}") from None
            return int(head["ContentLength"])
        source = self._readable_local_path(url)
        if not source.is_file():
            raise ArchiveNotFoundError(f"no archive at {url}")
        return source.stat().st_size

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

    # --- presigned uploads: bytes staged under .uploads/ until confirmed -----------------------------------

    def _staged_path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path.parent != (self.root / UPLOADS_PREFIX).resolve():
            raise ValueError(f"staging key {key!r} leaves the uploads directory")
        return path

    @property
    def bucket(self) -> str:
        """The configured bucket (S3 storage only)."""
        if not self.settings.s3_bucket:
            raise RuntimeError("no S3 bucket is configured (MODELREG_S3_BUCKET)")
        return self.settings.s3_bucket

    def presign_put(self, key: str, content_type: str, expires_in_s: int) -> str:
        """An S3 presigned PUT URL for `key`, signed with its Content-Type (S3 storage only)."""
        return str(
            _s3_client(self.settings).generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_in_s,
                HttpMethod="PUT",
            )
        )

    async def stage(self, spooled: Path, key: str) -> None:
        """Move a spooled upload (received by the API itself) to its staging place (filesystem storage)."""
        target = self._staged_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spooled, target)

    async def staged(self, key: str) -> StagedUpload | None:
        """Size and Content-Type of the staged bytes, or None when nothing was uploaded."""
        if self.uses_s3:
            import botocore.exceptions

            try:
                head = await asyncio.to_thread(
                    _s3_client(self.settings).head_object, Bucket=self.bucket, Key=key
                )
            except botocore.exceptions.ClientError:
                return None
            return StagedUpload(
                size=int(head["ContentLength"]),
                content_type=head.get("ContentType"),
                etag=str(head.get("ETag", "")).strip('"') or None,
            )
        path = self._staged_path(key)
        if not path.is_file():
            return None
        return StagedUpload(size=path.stat().st_size, content_type=None, etag=None)

    async def fetch_staged(self, key: str, max_bytes: int) -> tuple[Path, str, int]:
        """A copy of the staged bytes in the spool directory, hashed: (path, sha256, size)."""
        if self.uses_s3:
            body = await asyncio.to_thread(
                lambda: _s3_client(self.settings).get_object(Bucket=self.bucket, Key=key)["Body"]
            )
            try:
                return await spool(_iterate_in_thread(body), self.incoming_dir, max_bytes)
            finally:
                body.close()
        source = self._staged_path(key)
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkstemp(dir=self.incoming_dir, suffix=".part")[1])
        try:
            # A hard link where it can (same file system), so the check reads the bytes in place.
            target.unlink()
            os.link(source, target)
        except OSError:
            await asyncio.to_thread(shutil.copyfile, source, target)
        digest, size = await asyncio.to_thread(_hash_file, target)
        if size > max_bytes:
            target.unlink(missing_ok=True)
            raise ArchiveTooLargeError(max_bytes)
        return target, digest, size

    async def delete_staged(self, key: str) -> None:
        if self.uses_s3:
            await asyncio.to_thread(_s3_client(self.settings).delete_object, Bucket=self.bucket, Key=key)
            return
        self._staged_path(key).unlink(missing_ok=True)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def _iterate_in_thread(body: Any, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(body.read, chunk_size):
        yield chunk
