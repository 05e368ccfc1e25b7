"""Model archives (.tar.gz): hashing, safety checks and unpacking. No network, no database.

Archives are read as a stream, member by member, with caps on the member count and the unpacked bytes, so a
small archive cannot make the reader hold millions of members in memory or decompress gigabytes: the first
excess stops the read. The gzip stream is always read to its end, so a bad CRC or trailing garbage is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelreg.shared.settings import Settings

CHUNK = 1024 * 1024
DRAIN_CHUNK = 64 * 1024
# Tar headers (and PAX extended headers) are read on top of the members' data; this much per member, plus a
# fixed amount for the end blocks and record padding, is allowed beyond the unpacked-bytes cap.
HEADER_ALLOWANCE_PER_MEMBER = 4096
HEADER_ALLOWANCE = 1024 * 1024
# Below this many unpacked bytes the compression ratio is not checked: small files of zeros or text compress
# far better than model weights, and cannot hurt.
RATIO_FLOOR_BYTES = 64 * 1024 * 1024


class InvalidArchiveError(ValueError):
    """The archive is unreadable, too large unpacked, or holds something that must never be unpacked.

    `limit` names the exceeded setting and its value (e.g. {"max_archive_members": 10000}) when a cap was hit.
    """

    def __init__(self, reason: str, detail: str, limit: dict[str, int] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.limit = limit or {}


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 10_000
    max_unpacked_bytes: int = 8 * 1024**3
    # Model weights barely compress; an archive unpacking to over 100 times its size is a bomb.
    max_compression_ratio: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(settings.max_archive_members, settings.max_unpacked_bytes, settings.max_compression_ratio)

    def for_archive(self, compressed_bytes: int) -> ArchiveLimits:
        """The caps for one archive: the unpacked bytes also bounded by its size times the ratio."""
        by_ratio = max(RATIO_FLOOR_BYTES, compressed_bytes * self.max_compression_ratio)
        return replace(self, max_unpacked_bytes=min(self.max_unpacked_bytes, by_ratio))

    @property
    def max_stream_bytes(self) -> int:
        """The most decompressed bytes read: the members' data plus room for their headers."""
        return self.max_unpacked_bytes + self.max_members * HEADER_ALLOWANCE_PER_MEMBER + HEADER_ALLOWANCE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_member(member: tarfile.TarInfo) -> None:
    # str.split, not PurePosixPath: pathlib interns every part, and the intern table never shrinks.
    if member.name.startswith(("/", "\\")):
        raise InvalidArchiveError("unsafe_archive", f"absolute path {member.name!r}")
    if ".." in member.name.split("/"):
        raise InvalidArchiveError("unsafe_archive", f"path escapes the archive {member.name!r}")
    if member.issym() or member.islnk():
        raise InvalidArchiveError("unsafe_archive", f"link {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise InvalidArchiveError("unsafe_archive", f"special file {member.name!r}")


def _too_large(limits: ArchiveLimits) -> InvalidArchiveError:
    return InvalidArchiveError(
        "archive_too_large_unpacked",
        f"the archive unpacks to more than {limits.max_unpacked_bytes} bytes (the smaller of "
        f"MODELREG_MAX_UNPACKED_BYTES and {limits.max_compression_ratio} times the archive's size)",
        {
            "max_unpacked_bytes": limits.max_unpacked_bytes,
            "max_compression_ratio": limits.max_compression_ratio,
        },
    )


class _CappedReader:
    """The decompressed stream, refusing to produce more than `limit` bytes."""

    def __init__(self, source: gzip.GzipFile, limits: ArchiveLimits) -> None:
        self.source = source
        self.limits = limits
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        allowed = self.limits.max_stream_bytes - self.read_bytes + 1
        data = self.source.read(allowed if size is None or size < 0 else min(size, allowed))
        self.read_bytes += len(data)
        if self.read_bytes > self.limits.max_stream_bytes:
            raise _too_large(self.limits)
        return data

    def drain(self) -> None:
        """Read to the end: gzip checks the CRC and length there, and refuses non-gzip trailing bytes."""
        while self.read(DRAIN_CHUNK):
            pass


def _scan(
    path: Path, limits: ArchiveLimits, on_member: Callable[[tarfile.TarFile, tarfile.TarInfo], Any]
) -> list[str]:
    files: list[str] = []
    members = 0
    declared = 0
    try:
        limits = limits.for_archive(path.stat().st_size)
        with gzip.open(path, "rb") as compressed:
            reader = _CappedReader(compressed, limits)
            # Stream mode ("r|"): one pass, no seeking, members handled as they come.
            # typeshed types every fileobj as seekable and writable; stream reading only calls read().
            with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
                while (member := archive.next()) is not None:
                    archive.members.clear()  # TarFile keeps every member it read; we need none
                    members += 1
                    if members > limits.max_members:
                        raise InvalidArchiveError(
                            "archive_too_many_members",
                            f"the archive holds more than {limits.max_members} members",
                            {"max_archive_members": limits.max_members},
                        )
                    _check_member(member)
                    declared += member.size
                    if declared > limits.max_unpacked_bytes:
                        raise _too_large(limits)
                    on_member(archive, member)
                    if member.isfile():
                        files.append(member.name)
            reader.drain()
    except tarfile.FilterError as exc:  # the "data" filter refused what _check_member let through
        raise InvalidArchiveError("unsafe_archive", str(exc)) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise InvalidArchiveError("invalid_archive", f"not a readable .tar.gz: {exc}") from None
    if not files:
        raise InvalidArchiveError("invalid_archive", "the archive holds no files")
    return files


def list_members(path: Path, limits: ArchiveLimits | None = None) -> list[str]:
    """Names of the regular files in a gzip'd tar, after checking every member and the caps."""
    return _scan(path, limits or ArchiveLimits(), lambda archive, member: None)


def extract(path: Path, destination: Path, limits: ArchiveLimits | None = None) -> list[Path]:
    """Unpack an archive member by member, checking each first; returns the extracted files.

    On InvalidArchiveError `destination` may hold part of the archive: the caller discards it.
    """
    destination.mkdir(parents=True, exist_ok=True)

    def unpack(archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        # The "data" filter refuses anything _check_member missed (defence in depth).
        archive.extract(member, destination, filter="data")

    names = _scan(path, limits or ArchiveLimits(), unpack)
    return [destination / name for name in names]
