"""Reading a model's signature out of its archive without loading the model.

- ONNX: the model proto is read field by field from the archive's stream (protobuf wire format): only the
  graph's inputs, outputs and the names of its initializers are kept; weights (initializer data, nodes,
  attributes) are skipped in bounded chunks, never held in memory. No onnx package (a dev dependency) and
  no onnxruntime session (it would load the weights).
- safetensors: the 8-byte header length and the JSON header; the weights after it are never read.

The archive is streamed once (`tarfile` "r|gz"). Inference is best effort: an archive that cannot be read
this way gives no signature (the upload's checks and the bridge report real problems).
"""

from __future__ import annotations

import json
import struct
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelreg.shared.contracts import ModelFormat
from modelreg.shared.signatures import TensorSpec, onnx_schemas, onnx_type_name, safetensors_schema

MAX_KEPT_BYTES = 64 * 1024  # a name or dim_param we keep
MAX_VALUES = 1000  # inputs, outputs, dimensions or tensors kept
MAX_SAFETENSORS_HEADER = 16 * 1024 * 1024
MAX_MODEL_FILES = 16
SKIP_CHUNK = 1024 * 1024


class SignatureError(ValueError):
    """The file is not what its name says (truncated, malformed, over a bound)."""


class _Wire:
    """Protobuf wire format over a forward-only binary stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.pos = 0

    def _read(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise SignatureError("truncated protobuf")
        self.pos += size
        return data

    def varint(self) -> int:
        result = 0
        for shift in range(0, 70, 7):
            byte = self._read(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise SignatureError("malformed varint")

    def length(self, end: int) -> int:
        size = self.varint()
        if self.pos + size > end:
            raise SignatureError("a field runs past its message")
        return size

    def text(self, end: int) -> str:
        size = self.length(end)
        if size > MAX_KEPT_BYTES:
            raise SignatureError("a name is too long")
        return self._read(size).decode("utf-8", errors="replace")

    def skip(self, size: int) -> None:
        while size > 0:
            chunk = self.stream.read(min(size, SKIP_CHUNK))
            if not chunk:
                raise SignatureError("truncated protobuf")
            size -= len(chunk)
            self.pos += len(chunk)

    def skip_value(self, wire_type: int, end: int) -> None:
        if wire_type == 0:
            self.varint()
        elif wire_type == 1:
            self.skip(8)
        elif wire_type == 2:
            self.skip(self.length(end))
        elif wire_type == 5:
            self.skip(4)
        else:
            raise SignatureError(f"unsupported wire type {wire_type}")

    def fields(self, end: int) -> Iterator[tuple[int, int]]:
        """(field number, wire type) of each field until `end`; the caller reads or skips each value."""
        while self.pos < end:
            key = self.varint()
            yield key >> 3, key & 7
        if self.pos != end:
            raise SignatureError("a message runs past its end")


# Field numbers of onnx.proto (ModelProto, GraphProto, ValueInfoProto, TypeProto, TensorShapeProto).
_MODEL_GRAPH = 7
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 5, 11, 12
_TENSOR_NAME = 8
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR, _TYPE_KINDS = 1, {4: "sequence", 5: "map", 8: "sparse_tensor", 9: "optional"}
_TENSOR_ELEM_TYPE, _TENSOR_SHAPE = 1, 2
_SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 1, 2


def _dimension(wire: _Wire, end: int) -> int | None:
    value: int | None = None
    for number, wire_type in wire.fields(end):
        if number == _DIM_VALUE and wire_type == 0:
            value = wire.varint()
            value = value - (1 << 64) if value >= 1 << 63 else value
        elif number == _DIM_PARAM and wire_type == 2:
            wire.text(end)  # symbolic: dynamic
            value = None
        else:
            wire.skip_value(wire_type, end)
    return value if value is not None and value >= 0 else None


def _shape(wire: _Wire, end: int) -> list[int | None]:
    dims: list[int | None] = []
    for number, wire_type in wire.fields(end):
        if number == _SHAPE_DIM and wire_type == 2:
            size = wire.length(end)
            dims.append(_dimension(wire, wire.pos + size))
            if len(dims) > MAX_VALUES:
                raise SignatureError("too many dimensions")
        else:
            wire.skip_value(wire_type, end)
    return dims


def _tensor_type(wire: _Wire, end: int) -> tuple[str, list[int | None] | None]:
    elem_type, shape = 0, None
    for number, wire_type in wire.fields(end):
        if number == _TENSOR_ELEM_TYPE and wire_type == 0:
            elem_type = wire.varint()
        elif number == _TENSOR_SHAPE and wire_type == 2:
            size = wire.length(end)
            shape = _shape(wire, wire.pos + size)
        else:
            wire.skip_value(wire_type, end)
    return onnx_type_name(elem_type), shape


def _type(wire: _Wire, end: int) -> tuple[str, list[int | None] | None]:
    found: tuple[str, list[int | None] | None] = ("unknown", None)
    for number, wire_type in wire.fields(end):
        if number == _TYPE_TENSOR and wire_type == 2:
            size = wire.length(end)
            found = _tensor_type(wire, wire.pos + size)
        elif number in _TYPE_KINDS and wire_type == 2:
            wire.skip_value(wire_type, end)
            found = (_TYPE_KINDS[number], None)
        else:
            wire.skip_value(wire_type, end)
    return found


def _value_info(wire: _Wire, end: int) -> TensorSpec:
    name, kind, shape = "", "unknown", None
    for number, wire_type in wire.fields(end):
        if number == _VALUE_NAME and wire_type == 2:
            name = wire.text(end)
        elif number == _VALUE_TYPE and wire_type == 2:
            size = wire.length(end)
            kind, shape = _type(wire, wire.pos + size)
        else:
            wire.skip_value(wire_type, end)
    return TensorSpec(name=name, type=kind, shape=shape)


def _initializer_name(wire: _Wire, end: int) -> str:
    name = ""
    for number, wire_type in wire.fields(end):
        if number == _TENSOR_NAME and wire_type == 2:
            name = wire.text(end)
        else:
            wire.skip_value(wire_type, end)  # raw_data and the typed data: skipped in chunks
    return name


@dataclass
class OnnxSignature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


def read_onnx_signature(stream: IO[bytes], size: int) -> OnnxSignature:
    """The graph's inputs (initializers left out, as onnxruntime does) and outputs of a serialized model."""
    wire = _Wire(stream)
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    initializers: set[str] = set()
    seen_graph = False
    for number, wire_type in wire.fields(size):
        if number != _MODEL_GRAPH or wire_type != 2:
            wire.skip_value(wire_type, size)
            continue
        seen_graph = True
        graph_size = wire.length(size)
        graph_end = wire.pos + graph_size
        for field, field_type in wire.fields(graph_end):
            if field in (_GRAPH_INPUT, _GRAPH_OUTPUT) and field_type == 2:
                value_size = wire.length(graph_end)
                value_end = wire.pos + value_size
                target = inputs if field == _GRAPH_INPUT else outputs
                target.append(_value_info(wire, value_end))
                if len(target) > MAX_VALUES:
                    raise SignatureError("too many graph inputs or outputs")
            elif field == _GRAPH_INITIALIZER and field_type == 2:
                tensor_size = wire.length(graph_end)
                tensor_end = wire.pos + tensor_size
                if len(initializers) < 100 * MAX_VALUES:
                    initializers.add(_initializer_name(wire, tensor_end))
                else:
                    wire.skip(tensor_end - wire.pos)
            else:
                wire.skip_value(field_type, graph_end)
    if not seen_graph:
        raise SignatureError("no graph in the ONNX model")
    return OnnxSignature([spec for spec in inputs if spec.name not in initializers], outputs)


def read_safetensors_header(stream: IO[bytes], size: int) -> list[dict[str, Any]]:
    """Tensor names, dtypes and shapes from a safetensors file's header (the weights are not read)."""
    prefix = stream.read(8)
    if len(prefix) != 8:
        raise SignatureError("truncated safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_SAFETENSORS_HEADER or length + 8 > size:
        raise SignatureError("implausible safetensors header length")
    raw = stream.read(length)
    if len(raw) != length:
        raise SignatureError("truncated safetensors header")
    try:
        header = json.loads(raw)
    except ValueError:
        raise SignatureError("the safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise SignatureError("the safetensors header is not a JSON object")
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
            raise SignatureError(f"tensor {name!r} has no shape")
        tensors.append({"name": name, "dtype": str(entry.get("dtype")), "shape": list(entry["shape"])})
    return tensors


def _model_members(archive: tarfile.TarFile, suffix: str) -> Iterator[tuple[str, tarfile.TarInfo]]:
    found = 0
    for member in archive:
        if member.isfile() and member.name.lower().endswith(suffix):
            found += 1
            if found > MAX_MODEL_FILES:
                return
            yield member.name.removeprefix("./"), member


def infer_schemas(
    path: Path, model_format: ModelFormat
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(input_schema, output_schema) read from the archive at `path`; (None, None) when there is none to
    read (other formats, no or several candidate files, an unreadable file)."""
    try:
        if model_format is ModelFormat.ONNX:
            return _infer_onnx(path)
        if model_format is ModelFormat.SAFETENSORS:
            return _infer_safetensors(path), None
    except (SignatureError, tarfile.TarError, OSError, EOFError):
        pass
    return None, None


def _infer_onnx(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    signatures: dict[str, OnnxSignature] = {}
    with tarfile.open(path, "r|gz") as archive:
        for name, member in _model_members(archive, ".onnx"):
            stream = archive.extractfile(member)
            if stream is not None:
                try:
                    signatures[name] = read_onnx_signature(stream, member.size)
                except SignatureError:
                    continue
    # The file the bridge serves (serve_bridge/loaders.py): the only one, or the one named model.onnx.
    chosen = [n for n in signatures if len(signatures) == 1 or Path(n).name == "model.onnx"]
    if len(chosen) != 1:
        return None, None
    signature = signatures[chosen[0]]
    return onnx_schemas(Path(chosen[0]).name, signature.inputs, signature.outputs)


def _infer_safetensors(path: Path) -> dict[str, Any] | None:
    tensors: list[dict[str, Any]] = []
    with tarfile.open(path, "r|gz") as archive:
        for name, member in _model_members(archive, ".safetensors"):
            stream = archive.extractfile(member)
            if stream is None:
                continue
            for tensor in read_safetensors_header(stream, member.size):
                tensors.append({**tensor, "file": name})
                if len(tensors) > MAX_VALUES:
                    raise SignatureError("too many tensors to list")
    return safetensors_schema(tensors) if tensors else None
