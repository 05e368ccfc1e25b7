"""Archives are fetched only from the archive root, the allowed roots and the configured bucket.

Whatever the failure, the model's tenant reads a generic reason; the URL and the real hash are in the logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from modelreg.services.serve_bridge.materialize import ArchiveProblem, prepare_model_files
from modelreg.shared.adapters.storage import ArchiveLocationRefusedError, ArchiveStorage
from modelreg.shared.settings import Settings
from tests.model_archives import linear_onnx_bytes, tar_gz, write_archive

FETCH_FAILED = "the model archive could not be fetched"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "archives"


@pytest.fixture
def storage(root: Path) -> ArchiveStorage:
    return ArchiveStorage(Settings(archive_root=str(root)))


async def refused_with(storage: ArchiveStorage, url: str, tmp_path: Path) -> ArchiveProblem:
    with pytest.raises(ArchiveProblem) as caught:
        await prepare_model_files(storage, url, "0" * 64, tmp_path / "cache")
    return caught.value


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/proc/self/environ", "file:///etc/hostname"])
async def test_system_files_are_refused_with_a_generic_reason(storage, tmp_path, url) -> None:
    with capture_logs() as logs:
        problem = await refused_with(storage, url, tmp_path)

    assert (str(problem), problem.reason) == (FETCH_FAILED, "archive_not_allowed")
    assert [entry["url"] for entry in logs if entry["event"] == FETCH_FAILED] == [url]
    assert not any((tmp_path / "cache" / "downloads").iterdir())  # nothing was copied


async def test_links_and_dotdot_cannot_lead_out_of_the_root(storage, root, tmp_path) -> None:
    outside, _ = write_archive(tmp_path / "outside", "m.tar.gz", tar_gz({"model.onnx": b"x"}))
    root.mkdir()
    os.symlink(outside, root / "link.tar.gz")

    for url in [(root / "link.tar.gz").as_uri(), f"{root}/../outside/m.tar.gz", outside.as_uri()]:
        with pytest.raises(ArchiveLocationRefusedError):
            await storage.fetch(url, tmp_path / "copy.tar.gz")
        assert (await refused_with(storage, url, tmp_path)).reason == "archive_not_allowed"
    assert not (tmp_path / "copy.tar.gz").exists()


async def test_the_root_and_the_allowed_roots_are_readable(root, tmp_path) -> None:
    in_root, root_hash = write_archive(root / "ns", "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()}))
    shared, shared_hash = write_archive(tmp_path / "shared", "s.tar.gz", tar_gz({"model.onnx": b"s"}))
    storage = ArchiveStorage(
        Settings(archive_root=str(root), archive_allowed_roots=f" {tmp_path / 'shared'} , {tmp_path / 'x'}")
    )

    root_files = await prepare_model_files(storage, in_root.as_uri(), root_hash, tmp_path / "cache")
    shared_files = await prepare_model_files(storage, str(shared), shared_hash, tmp_path / "cache")

    assert (root_files / "model.onnx").read_bytes() == linear_onnx_bytes()
    assert (shared_files / "model.onnx").read_bytes() == b"s"


async def test_a_missing_archive_or_a_wrong_hash_do_not_reveal_paths_or_hashes(
    storage, root, tmp_path
) -> None:
    path, digest = write_archive(root, "m.tar.gz", tar_gz({"model.onnx": b"x"}))
    expected = "1" * 64

    with capture_logs() as logs:
        missing = await refused_with(storage, (root / "none.tar.gz").as_uri(), tmp_path)
        with pytest.raises(ArchiveProblem) as mismatch:
            await prepare_model_files(storage, path.as_uri(), expected, tmp_path / "cache")

    assert (str(missing), missing.reason) == (FETCH_FAILED, "archive_unavailable")
    assert str(mismatch.value) == "the archive does not match the model's model_hash"
    assert str(root) not in str(missing) + str(mismatch.value) and digest not in str(mismatch.value)
    logged = {entry["event"]: entry for entry in logs}
    assert "none.tar.gz" in logged[FETCH_FAILED]["url"]
    assert logged["the archive does not match the model's model_hash"]["archive_sha256"] == digest


async def test_s3_urls_are_refused_without_a_configured_bucket_or_for_another_one(tmp_path) -> None:
    without_bucket = ArchiveStorage(Settings(archive_root=str(tmp_path)))
    other_bucket = ArchiveStorage(Settings(archive_root=str(tmp_path), s3_bucket="models"))

    for storage in (without_bucket, other_bucket):
        with pytest.raises(ArchiveLocationRefusedError):
            await storage.fetch("s3://secrets/keys.tar.gz", tmp_path / "copy.tar.gz")
