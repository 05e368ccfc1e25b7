"""Small archives that unpack into far too much, and damaged gzip streams, for the archive-cap tests."""

from __future__ import annotations

import io
import tarfile

from tests.api_support import make_archive as tar_gz


def many_members(count: int, kind: bytes = tarfile.REGTYPE, last_file: bool = False) -> bytes:
    """A .tar.gz of `count` empty members (files, or directories with `kind=DIRTYPE`)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(count):
            info = tarfile.TarInfo(f"m{index}")
            info.type = kind
            archive.addfile(info)
        if last_file:
            archive.addfile(tarfile.TarInfo("model.onnx"), io.BytesIO(b""))
    return buffer.getvalue()


def declared_huge(size: int = 4 * 1024**4) -> bytes:
    """One member whose header declares `size` bytes, followed by none of them: refused at its header."""
    header = tarfile.TarInfo("model.onnx")
    header.size = size
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.fileobj.write(header.tobuf(archive.format, archive.encoding, archive.errors))
    return buffer.getvalue()


def zeros(size: int) -> bytes:
    """One file of `size` zero bytes (compresses about a thousandfold)."""
    return tar_gz({"model.onnx": bytes(size)})


def bad_crc() -> bytes:
    data = bytearray(tar_gz({"model.onnx": b"weights"}))
    data[-8] ^= 0xFF  # the gzip trailer: CRC32, then the length
    return bytes(data)


def trailing_garbage() -> bytes:
    return tar_gz({"model.onnx": b"weights"}) + b"not gzip at all"
