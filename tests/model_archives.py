"""Tiny real models for the bridge's tests: an ONNX graph, safetensors weights, and their archives."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

# y = x @ W + b, for x of shape [batch, 3]
LINEAR_W = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]], dtype=np.float32)
LINEAR_B = np.array([0.25, -0.5], dtype=np.float32)


def linear_onnx_bytes(b: np.ndarray = LINEAR_B) -> bytes:
    """y = x @ LINEAR_W + b (another `b`: another version of the model, with answers told apart)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(LINEAR_W, "W"),
            numpy_helper.from_array(np.asarray(b, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime of the last years
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_linear(x: list[list[float]], b: np.ndarray = LINEAR_B) -> np.ndarray:
    return np.asarray(x, dtype=np.float32) @ LINEAR_W + b


SAFETENSORS_TENSORS = {
    "encoder.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
    "encoder.bias": np.zeros(4, dtype=np.float32),
    "step": np.array([7], dtype=np.int64),
}


def safetensors_bytes() -> bytes:
    return _saved(SAFETENSORS_TENSORS)


def _saved(tensors: dict[str, np.ndarray]) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        save_file(tensors, str(path))
        return path.read_bytes()


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_archive(directory: Path, name: str, data: bytes) -> tuple[Path, str]:
    """Write an archive; returns its path and sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def archive_with_link(target: str = "/etc/passwd") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.onnx")
        info.type = tarfile.SYMTYPE
        info.linkname = target
        archive.addfile(info)
    return buffer.getvalue()
