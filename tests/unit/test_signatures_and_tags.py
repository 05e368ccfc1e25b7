"""Signatures read from real ONNX and safetensors files (shared/signature_reading.py), the check of a
request's inputs against them (shared/signatures.py), and the tag rules (shared/tags.py)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from modelreg.shared.contracts import ModelFormat
from modelreg.shared.signature_reading import (
    SKIP_CHUNK,
    SignatureError,
    infer_schemas,
    read_onnx_signature,
    read_safetensors_header,
)
from modelreg.shared.signatures import InputProblem, check_inputs
from modelreg.shared.tags import MAX_TAGS, TagError, check_changes, check_tags, too_many_after
from tests.model_archives import linear_onnx_bytes, safetensors_bytes, tar_gz


class CountingStream(io.BytesIO):
    """Records the largest single read: the reader must never ask for a whole weight at once."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest = max(self.largest, len(data))
        return data


def onnx_model(initializer_as_input: bool = False, weight_elements: int = 6) -> bytes:
    weights = np.ones((3, weight_elements // 3), dtype=np.float32)
    inputs = [
        helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("mask", TensorProto.BOOL, [None, 7]),
    ]
    if initializer_as_input:  # IR < 4 style: initializers listed among the inputs
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(weights.shape)))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["tokens"], ["out"])],
        "g",
        inputs,
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["batch", 16])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    return helper.make_model(graph).SerializeToString()


def test_onnx_inputs_outputs_types_and_dynamic_dimensions() -> None:
    data = onnx_model()
    signature = read_onnx_signature(io.BytesIO(data), len(data))
    assert [s.as_json() for s in signature.inputs] == [
        {"name": "tokens", "type": "tensor(int64)", "shape": [None, None]},
        {"name": "mask", "type": "tensor(bool)", "shape": [None, 7]},
    ]
    assert [s.as_json() for s in signature.outputs] == [
        {"name": "out", "type": "tensor(int64)", "shape": [None, 16]}
    ]


def test_initializers_listed_as_inputs_are_left_out_like_onnxruntime_does() -> None:
    data = onnx_model(initializer_as_input=True)
    signature = read_onnx_signature(io.BytesIO(data), len(data))
    assert [s.name for s in signature.inputs] == ["tokens", "mask"]


def test_weights_are_skipped_in_bounded_chunks() -> None:
    data = onnx_model(weight_elements=3 * 1_000_000)  # 12 MB of weights
    stream = CountingStream(data)
    signature = read_onnx_signature(stream, len(data))
    assert [s.name for s in signature.inputs] == ["tokens", "mask"]
    assert stream.largest <= SKIP_CHUNK


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_a_truncated_onnx_file_is_an_error(cut: int) -> None:
    data = linear_onnx_bytes()[:-cut]
    with pytest.raises(SignatureError):
        read_onnx_signature(io.BytesIO(data), len(data))


def test_safetensors_header_only() -> None:
    data = safetensors_bytes()
    stream = CountingStream(data)
    tensors = read_safetensors_header(stream, len(data))
    assert sorted(t["name"] for t in tensors) == ["encoder.bias", "encoder.weight", "step"]
    (header_length,) = struct.unpack("<Q", data[:8])
    assert stream.tell() == 8 + header_length  # the weights after the header were never read


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x00",
        struct.pack("<Q", 10**12) + b"{}",
        struct.pack("<Q", 4) + b"[1]x",
        struct.pack("<Q", 2),
    ],
)
def test_malformed_safetensors_headers_are_errors(data: bytes) -> None:
    with pytest.raises(SignatureError):
        read_safetensors_header(io.BytesIO(data), len(data))


def test_archives_pick_the_file_the_bridge_serves(tmp_path: Path) -> None:
    def schemas(files: dict[str, bytes], model_format: ModelFormat = ModelFormat.ONNX) -> tuple:
        path = tmp_path / "a.tar.gz"
        path.write_bytes(tar_gz(files))
        return infer_schemas(path, model_format)

    single, _ = schemas({"sub/net.onnx": linear_onnx_bytes()})
    assert single is not None and single["file"] == "net.onnx"
    named, _ = schemas({"a.onnx": onnx_model(), "model.onnx": linear_onnx_bytes()})
    assert named is not None and named["inputs"][0]["name"] == "x"
    assert schemas({"a.onnx": onnx_model(), "b.onnx": linear_onnx_bytes()}) == (None, None)
    assert schemas({"model.pt": b"x"}, ModelFormat.PYTORCH) == (None, None)
    assert schemas({"model.safetensors": b"garbage"}, ModelFormat.SAFETENSORS) == (None, None)
    (tmp_path / "a.tar.gz").write_bytes(b"not gzip")
    assert infer_schemas(tmp_path / "a.tar.gz", ModelFormat.ONNX) == (None, None)


# --- check_inputs ---------------------------------------------------------------------------------------

SCHEMA = {
    "inputs": [
        {"name": "x", "type": "tensor(float)", "shape": [None, 3]},
        {"name": "ids", "type": "tensor(int64)", "shape": [2]},
    ]
}


def test_fitting_inputs_have_no_problems() -> None:
    assert check_inputs(SCHEMA, {"x": [[1, 2.5, 3]], "ids": [1, 2]}) == []
    assert check_inputs(SCHEMA, {"x": [], "ids": [1, 2]}) == []  # zero rows of a dynamic dimension
    assert check_inputs(None, {"anything": 1}) == []
    assert check_inputs({"source": "safetensors", "tensors": []}, {"anything": 1}) == []


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({"ids": [1, 2]}, InputProblem("x", "missing input")),
        (
            {"x": [[1, 2, 3]], "ids": [1, 2], "y": 1},
            InputProblem("y", "unknown input (inputs: ['ids', 'x'])"),
        ),
        ({"x": [[1, 2]], "ids": [1, 2]}, InputProblem("x", "dimension 1 must be 3, got 2")),
        (
            {"x": [1, 2, 3], "ids": [1, 2]},
            InputProblem("x", "expected 2 nested list levels, found a scalar at level 1"),
        ),
        (
            {"x": [[1, 2, 3], [1, 2]], "ids": [1, 2]},
            InputProblem("x", "not rectangular: lists of lengths [2, 3] at level 1"),
        ),
        ({"x": [[[1], [2], [3]]], "ids": [1, 2]}, InputProblem("x", "expected 2 dimensions, found more")),
        ({"x": [["a", 2, 3]], "ids": [1, 2]}, InputProblem("x", "expected float values, found 'a'")),
        ({"x": [[1, 2, 3]], "ids": [1.5, 2]}, InputProblem("ids", "expected int64 values, found 1.5")),
        ({"x": [[True, 2, 3]], "ids": [1, 2]}, InputProblem("x", "expected float values, found True")),
    ],
)
def test_each_problem_names_the_input(inputs: dict, problem: InputProblem) -> None:
    assert check_inputs(SCHEMA, inputs) == [problem]


def test_inputs_that_are_not_an_object() -> None:
    assert check_inputs(SCHEMA, [1, 2]) == [
        InputProblem(None, "inputs must be a JSON object of input name → value")
    ]


@given(
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(), st.lists, max_leaves=20)
)
def test_check_inputs_never_raises(value: object) -> None:
    check_inputs(SCHEMA, {"x": value, "ids": value})


# --- tags -----------------------------------------------------------------------------------------------


@given(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_:\-]{0,63}\Z"), st.text(max_size=20).filter(str.isprintable))
def test_keys_of_the_rule_are_accepted(key: str, value: str) -> None:
    assert check_tags({key: value}) == {key: value}


@pytest.mark.parametrize("key", ["", "a.b", "$x", "a b", "-lead", "k" * 65, "é", "a/b"])
def test_keys_outside_the_rule_are_refused(key: str) -> None:
    with pytest.raises(TagError):
        check_tags({key: "v"})
    with pytest.raises(TagError):
        check_changes({key: None})


def test_changes_split_into_sets_and_removals() -> None:
    assert check_changes({"a": "1", "b": None}) == ({"a": "1"}, ["b"])
    with pytest.raises(TagError):
        check_changes({})
    with pytest.raises(TagError):
        check_changes({"a": "\u202e"})


def test_the_limit_counts_the_tags_after_the_change() -> None:
    current = {f"k{i}": "v" for i in range(MAX_TAGS)}
    assert too_many_after(current, {"new": "v"}, [])
    assert not too_many_after(current, {"new": "v"}, ["k0"])
    assert not too_many_after(current, {"k1": "changed"}, [])


def test_problems_become_a_422_naming_the_inputs() -> None:
    from modelreg.services.api.domain_errors import InvalidModelInputs
    from modelreg.services.api.errors import DOMAIN_ERROR_STATUS

    problems = check_inputs(SCHEMA, {"x": [[1, 2]], "extra": 1})
    error = InvalidModelInputs([p.as_json() for p in problems])

    assert DOMAIN_ERROR_STATUS[InvalidModelInputs] == 422
    assert error.code == "invalid_model_inputs"
    assert error.message == "The inputs do not fit the model's input schema (extra, ids, x)"
    assert error.details == {
        "inputs": [
            {"input": "ids", "message": "missing input"},
            {"input": "extra", "message": "unknown input (inputs: ['ids', 'x'])"},
            {"input": "x", "message": "dimension 1 must be 3, got 2"},
        ]
    }
