"""A model's archive, streamed back: `GET …/models/{model_id}/archive` (Serve replicas on other machines fetch
it there with a read key, docs/clusters.md). Same key and namespace rules as the other reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from modelreg.services.api.domain_errors import ArchiveMissing, ModelNotFound
from modelreg.services.api.models.ports import ArchiveReader, ModelRepository
from modelreg.shared.contracts import ModelKey


@dataclass(frozen=True)
class ModelArchiveDownload:
    """The archive as a stream (its first chunk already read, so a missing archive is a 404), its size and
    the sha256 the registry holds for it (the ETag)."""

    filename: str
    size: int
    sha256: str
    first: bytes
    rest: AsyncIterator[bytes]

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.first
        async for chunk in self.rest:
            yield chunk


class ModelArchives:
    def __init__(self, store: ModelRepository, storage: ArchiveReader) -> None:
        self.store = store
        self.storage = storage

    async def download(self, key: ModelKey) -> ModelArchiveDownload:
        details = await self.store.get_details(key)
        if details is None:
            raise ModelNotFound(key)
        url = details.model_archive_url
        try:
            size = await self.storage.archive_size(url)
            chunks = self.storage.read_chunks(url)
            first = await anext(chunks, b"")
        except (FileNotFoundError, PermissionError):  # missing, or outside the readable roots / bucket
            raise ArchiveMissing(key.model_id) from None
        return ModelArchiveDownload(
            f"{key.model_id}.tar.gz", size, details.model_hash.strip().lower(), first, chunks
        )
