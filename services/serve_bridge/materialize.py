"""Turning a model's archive into files on local disk: fetch, check the sha256, unpack safely.

Both the bridge (to refuse a bad archive before touching Ray Serve) and the Serve replica (which may run on
another machine) call `prepare_model_files`. Unpacked models are cached by their sha256, so on a shared
disk the replica finds the bridge's copy and does no work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from services.serve_bridge.naming import NamingError, check_model_hash
from shared.adapters.storage import ArchiveNotFoundError, ArchiveStorage
from shared.archives import InvalidArchiveError, extract, sha256_file

COMPLETE_MARKER = ".complete"


class ArchiveProblem(ValueError):
    """The model's archive cannot be deployed; `reason` is a stable identifier, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def cached_model_dir(cache_root: Path, model_hash: str) -> Path:
    return cache_root / "models" / model_hash


async def prepare_model_files(
    storage: ArchiveStorage, archive_url: str, model_hash: str, cache_root: Path
) -> Path:
    """The directory holding the model's unpacked files, fetching and checking the archive if needed."""
    try:
        expected = check_model_hash(model_hash)
    except NamingError as exc:
        raise ArchiveProblem("invalid_hash", str(exc)) from None
    target = cached_model_dir(cache_root, expected)
    if (target / COMPLETE_MARKER).is_file():
        return target / "files"
    downloads = cache_root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=downloads, suffix=".tar.gz")
    os.close(fd)
    archive = Path(name)
    staging = Path(tempfile.mkdtemp(dir=downloads, suffix=".unpack"))
    try:
        try:
            await storage.fetch(archive_url, archive)
        except ArchiveNotFoundError as exc:
            raise ArchiveProblem("archive_unavailable", f"cannot fetch the archive: {exc}") from None
        except Exception as exc:  # OSError, botocore's connection/credential errors, …: all mean "unreadable"
            raise ArchiveProblem(
                "archive_unavailable", f"cannot fetch the archive {archive_url}: {type(exc).__name__}: {exc}"
            ) from None
        actual = await asyncio.to_thread(sha256_file, archive)
        if actual != expected:
            raise ArchiveProblem(
                "hash_mismatch", f"archive sha256 {actual} does not match the model's model_hash {expected}"
            )
        try:
            await asyncio.to_thread(extract, archive, staging / "files")
        except InvalidArchiveError as exc:
            raise ArchiveProblem(exc.reason, f"{exc.reason}: {exc.detail}") from None
        (staging / COMPLETE_MARKER).write_text(expected)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)
        except OSError:
            # Somebody else (a replica, another bridge) finished the same archive first: theirs is as good.
            if not (target / COMPLETE_MARKER).is_file():
                raise
        return target / "files"
    finally:
        archive.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
