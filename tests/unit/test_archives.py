"""Archive checks read the archive as a stream: capped members and unpacked bytes, the whole gzip verified."""

from __future__ import annotations

import gzip
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from modelreg.shared.archives import ArchiveLimits, InvalidArchiveError, extract, list_members
from tests.archive_bombs import bad_crc, declared_huge, many_members, trailing_garbage, zeros
from tests.model_archives import tar_gz, write_archive

MIB = 1024 * 1024


def refusal(path: Path, limits: ArchiveLimits | None = None) -> InvalidArchiveError:
    with pytest.raises(InvalidArchiveError) as caught:
        list_members(path, limits)
    return caught.value


def test_one_member_too_many_is_refused_with_the_limit(tmp_path: Path) -> None:
    path, _ = write_archive(tmp_path, "many.tar.gz", many_members(101))

    assert len(list_members(path, ArchiveLimits(max_members=101))) == 101
    refused = refusal(path, ArchiveLimits(max_members=100))

    assert refused.reason == "archive_too_many_members"
    assert refused.limit == {"max_archive_members": 100}


def test_members_are_not_held_in_memory_while_checking(tmp_path: Path) -> None:
    path, _ = write_archive(
        tmp_path, "dirs.tar.gz", many_members(20_000, kind=tarfile.DIRTYPE, last_file=True)
    )
    limits = ArchiveLimits(max_members=30_000)
    list_members(write_archive(tmp_path, "warm-up.tar.gz", tar_gz({"a": b"a"}))[0])  # one-time caches

    tracemalloc.start()
    try:
        assert list_members(path, limits) == ["model.onnx"]
        streaming_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with tarfile.open(path, "r:gz") as archive:
            archive.getmembers()
        caching_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # 20,000 TarInfo objects take several MiB; one at a time takes next to nothing.
    assert caching_peak > 5 * MIB
    assert streaming_peak < MIB


def test_too_many_members_stops_at_the_first_excess(tmp_path: Path) -> None:
    path, _ = write_archive(tmp_path, "many.tar.gz", many_members(20_000))

    assert refusal(path).reason == "archive_too_many_members"  # default cap: 10,000


def test_declared_sizes_over_the_cap_are_refused_without_reading_the_data(tmp_path: Path) -> None:
    huge, _ = write_archive(tmp_path, "huge.tar.gz", declared_huge())
    over, _ = write_archive(tmp_path, "over.tar.gz", tar_gz({"a.bin": bytes(MIB), "b.bin": bytes(MIB)}))

    # 4 TiB declared, no data behind it: refused for its size, not as truncated.
    assert refusal(huge).reason == "archive_too_large_unpacked"
    refused = refusal(over, ArchiveLimits(max_unpacked_bytes=MIB + MIB // 2))
    assert refused.reason == "archive_too_large_unpacked"
    assert refused.limit == {"max_unpacked_bytes": MIB + MIB // 2, "max_compression_ratio": 100}
    assert list_members(over, ArchiveLimits(max_unpacked_bytes=2 * MIB)) == ["a.bin", "b.bin"]


def test_decompressed_bytes_past_the_tar_end_count_too(tmp_path: Path) -> None:
    # A tiny tar followed, inside the same gzip stream, by 64 MiB of zeros that no header declares.
    archive = tar_gz({"model.onnx": b"weights"})
    data = gzip.compress(gzip.decompress(archive) + bytes(64 * MIB))
    path, _ = write_archive(tmp_path, "padded.tar.gz", data)

    assert refusal(path, ArchiveLimits(max_members=10, max_unpacked_bytes=MIB)).reason == (
        "archive_too_large_unpacked"
    )
    assert list_members(path, ArchiveLimits(max_unpacked_bytes=128 * MIB)) == ["model.onnx"]


def test_an_archive_unpacking_to_over_the_ratio_times_its_size_is_a_bomb(tmp_path: Path) -> None:
    # 128 MiB of zeros compress to about 128 KiB: far under MODELREG_MAX_UNPACKED_BYTES, far over 100:1.
    bomb, _ = write_archive(tmp_path, "zeros.tar.gz", tar_gz({"model.onnx": bytes(128 * MIB)}))
    refused = refusal(bomb)
    assert refused.reason == "archive_too_large_unpacked"
    assert refused.limit == {"max_unpacked_bytes": 64 * MIB, "max_compression_ratio": 100}
    assert list_members(bomb, ArchiveLimits(max_compression_ratio=2000)) == ["model.onnx"]

    # Small archives are not held to the ratio, and incompressible weights are far from it.
    small, _ = write_archive(tmp_path, "small.tar.gz", tar_gz({"config.json": bytes(MIB)}))
    assert list_members(small) == ["config.json"]
    weights, _ = write_archive(tmp_path, "weights.tar.gz", tar_gz({"w.bin": os.urandom(MIB)}))
    assert list_members(weights, ArchiveLimits(max_compression_ratio=2)) == ["w.bin"]


@pytest.mark.parametrize(("data", "text"), [(bad_crc(), "CRC check failed"), (trailing_garbage(), "Not a")])
def test_the_gzip_stream_is_verified_to_its_end(tmp_path: Path, data: bytes, text: str) -> None:
    path, _ = write_archive(tmp_path, "damaged.tar.gz", data)

    refused = refusal(path)

    assert refused.reason == "invalid_archive" and text in refused.detail


def test_extract_unpacks_member_by_member_under_the_same_caps(tmp_path: Path) -> None:
    good, _ = write_archive(tmp_path, "good.tar.gz", tar_gz({"dir/model.onnx": b"weights", "c.json": b"{}"}))
    bomb, _ = write_archive(tmp_path, "bomb.tar.gz", zeros(4 * MIB))

    files = extract(good, tmp_path / "good")
    with pytest.raises(InvalidArchiveError) as caught:
        extract(bomb, tmp_path / "bomb", ArchiveLimits(max_unpacked_bytes=MIB))

    assert [f.read_bytes() for f in files] == [b"weights", b"{}"]
    assert caught.value.reason == "archive_too_large_unpacked"
    assert not (tmp_path / "bomb" / "model.onnx").exists()  # refused at its header, nothing written
    with pytest.raises(InvalidArchiveError, match="CRC check failed"):
        extract(write_archive(tmp_path, "crc.tar.gz", bad_crc())[0], tmp_path / "crc")
