"""Model archives (.tar.gz): hashing, safety checks and unpacking. No network, no database."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path, PurePosixPath

CHUNK = 1024 * 1024


class InvalidArchiveError(ValueError):
    """The archive is unreadable, or holds something that must never be unpacked."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_member(member: tarfile.TarInfo) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        raise InvalidArchiveError("unsafe_archive", f"absolute path {member.name!r}")
    if ".." in name.parts:
        raise InvalidArchiveError("unsafe_archive", f"path escapes the archive {member.name!r}")
    if member.issym() or member.islnk():
        raise InvalidArchiveError("unsafe_archive", f"link {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise InvalidArchiveError("unsafe_archive", f"special file {member.name!r}")


def list_members(path: Path) -> list[str]:
    """Names of the regular files in a gzip'd tar, after checking every member is safe to unpack."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArchiveError("invalid_archive", f"not a readable .tar.gz: {exc}") from None
    for member in members:
        _check_member(member)
    files = [m.name for m in members if m.isfile()]
    if not files:
        raise InvalidArchiveError("invalid_archive", "the archive holds no files")
    return files


def extract(path: Path, destination: Path) -> list[Path]:
    """Unpack a checked archive; returns the extracted files."""
    names = list_members(path)
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "r:gz") as archive:
        # The "data" filter refuses anything list_members missed (defence in depth).
        archive.extractall(destination, filter="data")
    return [destination / name for name in names]
