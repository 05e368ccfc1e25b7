"""PURE: a model's signature (named tensors with an element type and a shape, `null` for a dynamic
dimension) as stored in `input_schema`/`output_schema`, and the check of a request's inputs against it.

Shapes of the stored schemas (inferred at upload, `shared/signature_reading.py`):

    ONNX         input_schema  {"source": "onnx", "file": "model.onnx",
                                "inputs": [{"name": "x", "type": "tensor(float)", "shape": [null, 3]}]}
                 output_schema {"source": "onnx", "file": "model.onnx",
                                "outputs": [{"name": "y", "type": "tensor(float)", "shape": [null, 2]}]}
    safetensors  input_schema  {"source": "safetensors", "tensors": [{"name": "w", "dtype": "F32",
                                "shape": [3, 4], "file": "w.safetensors"}]}

`check_inputs` validates against any schema holding an `inputs` list of that form (inferred or sent by the
client); other schemas (no `inputs`) constrain nothing. An inference route answers its problems with
`services.api.domain_errors.InvalidModelInputs([p.as_json() for p in problems])` (422 naming each input).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# ONNX TensorProto.DataType → the type name onnxruntime reports ("tensor(float)").
ONNX_ELEMENT_TYPES = {
    1: "float",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "double",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
}
_FLOATS = {"float", "double", "float16", "bfloat16"}
_INTEGERS = {"uint8", "int8", "uint16", "int16", "int32", "int64", "uint32", "uint64"}

Shape = list[int | None]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    type: str  # "tensor(float)"; other ONNX value kinds are named as such ("sequence", "map", ...)
    shape: Shape | None  # None: rank unknown

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "shape": self.shape}


def onnx_type_name(elem_type: int) -> str:
    return f"tensor({ONNX_ELEMENT_TYPES.get(elem_type, f'type{elem_type}')})"


def onnx_schemas(
    file: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"source": "onnx", "file": file, "inputs": [spec.as_json() for spec in inputs]},
        {"source": "onnx", "file": file, "outputs": [spec.as_json() for spec in outputs]},
    )


def safetensors_schema(tensors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"source": "safetensors", "tensors": [dict(t) for t in tensors]}


@dataclass(frozen=True, slots=True)
class InputProblem:
    """Why one input (or the set of inputs, `name` None) does not fit the schema."""

    name: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"input": self.name, "message": self.message}


def _declared(input_schema: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]] | None:
    if not input_schema:
        return None
    inputs = input_schema.get("inputs")
    if not isinstance(inputs, list):
        return None
    declared = {}
    for entry in inputs:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            declared[entry["name"]] = entry
    return declared


def declares_inputs(input_schema: Mapping[str, Any] | None) -> bool:
    """Whether `check_inputs` constrains anything for this schema (it holds an `inputs` list)."""
    return _declared(input_schema) is not None


def _shape_of(value: Any, rank: int) -> tuple[list[int | None], list[Any]] | str:
    """The shape of a nested list down to `rank` levels and its leaves, or why it is not rectangular.

    Below an empty level the sizes are unknown (None): `[]` fits any shape with a dynamic first dimension.
    """
    level = [value]
    shape: list[int | None] = []
    for depth in range(rank):
        if depth > 0 and not level:
            shape.append(None)
            continue
        if not all(isinstance(item, list) for item in level):
            return f"expected {rank} nested list levels, found a scalar at level {depth}"
        sizes = {len(item) for item in level}
        if len(sizes) > 1:
            return f"not rectangular: lists of lengths {sorted(sizes)} at level {depth}"
        shape.append(sizes.pop() if sizes else 0)
        level = [child for item in level for child in item]
    return shape, level


def _leaf_problem(element: str, leaves: list[Any]) -> str | None:
    for leaf in leaves:
        if element in _FLOATS:
            ok = isinstance(leaf, int | float) and not isinstance(leaf, bool)
        elif element in _INTEGERS:
            ok = isinstance(leaf, int) and not isinstance(leaf, bool)
        elif element == "bool":
            ok = isinstance(leaf, bool)
        elif element == "string":
            ok = isinstance(leaf, str)
        else:
            return None  # a type JSON has no literal for: the model decides
        if not ok:
            return f"expected {element} values, found {leaf!r}"
    return None


def check_inputs(input_schema: Mapping[str, Any] | None, inputs: Any) -> list[InputProblem]:
    """Problems of a request's `inputs` (name → nested lists) against the model's input schema.

    Empty when the request fits, or when the schema declares no inputs. Checked: the names (none missing,
    none unknown), the rank and the fixed dimensions, and the values' JSON type for the element type.
    """
    declared = _declared(input_schema)
    if declared is None:
        return []
    if not isinstance(inputs, Mapping):
        return [InputProblem(None, "inputs must be a JSON object of input name → value")]
    problems: list[InputProblem] = []
    for name in sorted(set(declared) - set(inputs)):
        problems.append(InputProblem(name, "missing input"))
    for name in sorted(set(inputs) - set(declared)):
        problems.append(InputProblem(str(name), f"unknown input (inputs: {sorted(declared)})"))
    for name, spec in declared.items():
        if name not in inputs:
            continue
        shape = spec.get("shape")
        if not isinstance(shape, list):
            continue
        found = _shape_of(inputs[name], len(shape))
        if isinstance(found, str):
            problems.append(InputProblem(name, found))
            continue
        actual, leaves = found
        if any(isinstance(leaf, list) for leaf in leaves):
            problems.append(InputProblem(name, f"expected {len(shape)} dimensions, found more"))
            continue
        wrong = [
            f"dimension {axis} must be {want}, got {got}"
            for axis, (want, got) in enumerate(zip(shape, actual, strict=True))
            if isinstance(want, int) and want >= 0 and got is not None and want != got
        ]
        if wrong:
            problems.append(InputProblem(name, "; ".join(wrong)))
            continue
        type_name = spec.get("type")
        if isinstance(type_name, str) and type_name.startswith("tensor(") and type_name.endswith(")"):
            if problem := _leaf_problem(type_name[len("tensor(") : -1], leaves):
                problems.append(InputProblem(name, problem))
    return problems
