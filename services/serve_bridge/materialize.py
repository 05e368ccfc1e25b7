"""Turning a model's archive into files on local disk: fetch, check the sha256, unpack safely.

Both the bridge (to refuse a bad archive before touching Ray Serve) and the Serve replica (which may run on
another machine) call `prepare_model_files`. Unpacked models are cached by their sha256, so on a shared
disk the replica finds the bridge's copy and does no work. The bridge evicts unused ones (`cache_rules`).

The reasons a model fails reach its tenant (`deployment_message`); they never name paths or the archive's
actual hash. The details are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import structlog

from modelreg.services.serve_bridge.cache_rules import CachedModel
from modelreg.services.serve_bridge.naming import NamingError, check_model_hash
from modelreg.shared.adapters.storage import ArchiveLocationRefusedError, ArchiveStorage
from modelreg.shared.archives import ArchiveLimits, InvalidArchiveError, extract, sha256_file

log = structlog.get_logger("modelreg.bridge")

COMPLETE_MARKER = ".complete"
SIZE_FILE = ".size"
FETCH_FAILED = "the model archive could not be fetched"
HASH_MISMATCH = "the archive does not match the model's model_hash"


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
        _touch(target)
        return target / "files"
    downloads = cache_root / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=downloads, suffix=".tar.gz")
    os.close(fd)
    archive = Path(name)
    staging = Path(tempfile.mkdtemp(dir=downloads, suffix=".unpack"))
    settings = storage.settings
    try:
        try:
            await storage.fetch(archive_url, archive)
        except Exception as exc:  # refused, missing, OSError, botocore's errors…: all mean "unreadable"
            refused = isinstance(exc, ArchiveLocationRefusedError)
            reason = "archive_not_allowed" if refused else "archive_unavailable"
            log.warning(FETCH_FAILED, reason=reason, url=archive_url, error=f"{type(exc).__name__}: {exc}")
            raise ArchiveProblem(reason, FETCH_FAILED) from None
        actual = await asyncio.to_thread(sha256_file, archive)
        if actual != expected:
            log.warning(HASH_MISMATCH, url=archive_url, model_hash=expected, archive_sha256=actual)
            raise ArchiveProblem("hash_mismatch", HASH_MISMATCH)
        limits = ArchiveLimits.from_settings(settings)
        try:
            files = await asyncio.to_thread(extract, archive, staging / "files", limits)
        except InvalidArchiveError as exc:
            raise ArchiveProblem(exc.reason, f"{exc.reason}: {exc.detail}") from None
        size = sum(path.stat().st_size for path in files)
        (staging / SIZE_FILE).write_text(str(size))
        (staging / COMPLETE_MARKER).write_text(expected)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)
        except OSError:
            # Somebody else (a replica, another bridge) finished the same archive first: theirs is as good.
            if not (target / COMPLETE_MARKER).is_file():
                raise
        _touch(target)
        return target / "files"
    finally:
        archive.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)


def _touch(directory: Path) -> None:
    # The directory's mtime is the model's last use, for the cache's least-recently-used eviction.
    with contextlib.suppress(FileNotFoundError):
        os.utime(directory)


def cached_models(cache_root: Path) -> list[CachedModel]:
    """The complete unpacked models in the cache, with their size and last use."""
    models: list[CachedModel] = []
    root = cache_root / "models"
    if not root.is_dir():
        return models
    for entry in root.iterdir():
        try:
            check_model_hash(entry.name)
            if not (entry / COMPLETE_MARKER).is_file():
                continue
            size_file = entry / SIZE_FILE
            if size_file.is_file():
                size = int(size_file.read_text())
            else:  # unpacked before sizes were recorded
                size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
            models.append(CachedModel(entry.name, size, entry.stat().st_mtime))
        except (NamingError, ValueError, OSError):
            continue  # not a model directory, or removed meanwhile
    return models


def detach_cached_model(cache_root: Path, model_hash: str) -> bool:
    """Move a model out of the cache in one step (no lookup sees it half-deleted); `empty_trash` frees it."""
    trash = cache_root / "evicted"
    trash.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(cached_model_dir(cache_root, model_hash), trash / f"{model_hash}.{uuid.uuid4().hex[:8]}")
    except FileNotFoundError:
        return False
    return True


def empty_trash(cache_root: Path) -> None:
    """Delete every detached model (also those left by a bridge that stopped while deleting)."""
    trash = cache_root / "evicted"
    if trash.is_dir():
        for entry in trash.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
