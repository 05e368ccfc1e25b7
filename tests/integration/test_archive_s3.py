"""The bridge's archive preparation from s3:// URLs, against a real S3-protocol server (moto)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from modelreg.services.serve_bridge.materialize import ArchiveProblem, prepare_model_files
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.settings import Settings
from tests.model_archives import linear_onnx_bytes, tar_gz, write_archive


async def test_s3_archive_is_fetched_checked_and_unpacked(tmp_path: Path, s3_url: str) -> None:
    data = tar_gz({"model.onnx": linear_onnx_bytes()})
    path, digest = write_archive(tmp_path, "m.tar.gz", data)
    s3 = boto3.client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket="models")
    s3.upload_file(str(path), "models", "ns/m.tar.gz")
    storage = ArchiveStorage(Settings(s3_endpoint_url=s3_url, s3_bucket="models", archive_root=""))

    files = await prepare_model_files(storage, "s3://models/ns/m.tar.gz", digest, tmp_path / "cache")

    assert (files / "model.onnx").read_bytes() == linear_onnx_bytes()
    with pytest.raises(ArchiveProblem, match="^the model archive could not be fetched$") as missing:
        await prepare_model_files(storage, "s3://models/ns/none.tar.gz", "1" * 64, tmp_path / "cache")
    assert missing.value.reason == "archive_unavailable"


async def test_s3_archives_are_fetched_only_from_the_configured_bucket(tmp_path: Path, s3_url: str) -> None:
    data = tar_gz({"model.onnx": linear_onnx_bytes()})
    path, digest = write_archive(tmp_path, "m.tar.gz", data)
    s3 = boto3.client("s3", endpoint_url=s3_url)
    s3.create_bucket(Bucket="other")
    s3.upload_file(str(path), "other", "ns/m.tar.gz")
    configured = ArchiveStorage(Settings(s3_endpoint_url=s3_url, s3_bucket="models", archive_root=""))
    local_only = ArchiveStorage(Settings(s3_endpoint_url=s3_url, archive_root=""))

    for storage in (configured, local_only):
        with pytest.raises(ArchiveProblem, match="^the model archive could not be fetched$") as refused:
            await prepare_model_files(storage, "s3://other/ns/m.tar.gz", digest, tmp_path / "cache")
        assert refused.value.reason == "archive_not_allowed"
    assert not (tmp_path / "cache" / "models").exists()
