"""Loading unpacked model files by `model_format`, and answering requests with them. No Ray here.

- onnx: an onnxruntime session; predictions on named inputs.
- safetensors: every tensor is loaded; the endpoint describes them (weights only, nothing to run).
- pytorch: a TorchScript module, when torch is installed.
- huggingface: a transformers pipeline, when transformers is installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelreg.shared.contracts import ModelFormat


class ModelLoadError(RuntimeError):
    """The files cannot be loaded as the model's format; the message says why."""


class BadModelInput(ValueError):
    """A prediction request the model cannot take; the message says why."""


class PredictionNotSupported(Exception):
    """The model has no prediction to run (weights-only formats)."""


class LoadedModel(Protocol):
    model_format: ModelFormat

    def describe(self) -> dict[str, Any]: ...

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]: ...


def _files_with_suffix(root: Path, *suffixes: str) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes))


def _single(candidates: list[Path], preferred: str, what: str) -> Path:
    if not candidates:
        raise ModelLoadError(f"the archive holds no {what} file")
    if len(candidates) == 1:
        return candidates[0]
    named = [p for p in candidates if p.name == preferred]
    if len(named) == 1:
        return named[0]
    names = ", ".join(str(p.name) for p in candidates[:5])
    raise ModelLoadError(
        f"the archive holds several {what} files ({names}); name the one to serve {preferred}"
    )


def model_files(model_format: ModelFormat, root: Path) -> list[Path]:
    """The files the format needs, found in the unpacked archive (raises ModelLoadError when missing)."""
    if model_format is ModelFormat.ONNX:
        return [_single(_files_with_suffix(root, ".onnx"), "model.onnx", ".onnx")]
    if model_format is ModelFormat.SAFETENSORS:
        files = _files_with_suffix(root, ".safetensors")
        if not files:
            raise ModelLoadError("the archive holds no .safetensors file")
        return files
    if model_format is ModelFormat.PYTORCH:
        return [_single(_files_with_suffix(root, ".pt", ".pth"), "model.pt", ".pt/.pth")]
    if model_format is ModelFormat.HUGGINGFACE:
        configs = _files_with_suffix(root, "config.json")
        configs = [p for p in configs if p.name == "config.json"]
        if not configs:
            raise ModelLoadError("the archive holds no config.json (a Hugging Face model directory)")
        return [min(configs, key=lambda p: len(p.parts))]
    raise ModelLoadError(f"unsupported model_format {model_format!r}")


def _require(module: str, model_format: ModelFormat) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelLoadError(
            f"model_format {model_format.value!r} needs the Python package {module!r}, which is not "
            f"installed in this Ray Serve runtime; run the {model_format.value} base image"
        ) from None


# onnxruntime type strings → numpy dtypes
ONNX_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def _json_ready(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return value


def _to_array(name: str, value: Any, dtype: Any, shape: list[Any]) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise BadModelInput(
            f"input {name!r}: not a rectangular nested list of {np.dtype(dtype).name}: {exc}"
        ) from None
    if len(shape) != array.ndim:
        raise BadModelInput(
            f"input {name!r}: expected {len(shape)} dimensions {shape}, got shape {list(array.shape)}"
        )
    for axis, (expected, actual) in enumerate(zip(shape, array.shape, strict=True)):
        if isinstance(expected, int) and expected >= 0 and expected != actual:
            raise BadModelInput(f"input {name!r}: dimension {axis} must be {expected}, got {actual}")
    return array


class OnnxModel:
    model_format = ModelFormat.ONNX

    def __init__(self, root: Path) -> None:
        import onnxruntime

        (path,) = model_files(ModelFormat.ONNX, root)
        options = onnxruntime.SessionOptions()
        # Ray gives a replica a fraction of a CPU; one thread per session avoids oversubscription.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ModelLoadError(f"onnxruntime cannot load {path.name}: {exc}") from None
        self.file = path.name
        self.inputs = {i.name: (i.type, list(i.shape)) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def describe(self) -> dict[str, Any]:
        def dims(shape: list[Any]) -> list[Any]:
            return [d if isinstance(d, int) else None for d in shape]

        return {
            "model_format": self.model_format.value,
            "file": self.file,
            "inputs": [{"name": n, "type": t, "shape": dims(s)} for n, (t, s) in self.inputs.items()],
            "outputs": [
                {"name": o.name, "type": o.type, "shape": dims(list(o.shape))}
                for o in self.session.get_outputs()
            ],
        }

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(inputs) - set(self.inputs))
        missing = sorted(set(self.inputs) - set(inputs))
        if unknown or missing:
            raise BadModelInput(
                f"inputs must be exactly {sorted(self.inputs)}"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
            )
        feed = {}
        for name, (type_name, shape) in self.inputs.items():
            dtype = ONNX_DTYPES.get(type_name)
            if dtype is None:
                raise BadModelInput(f"input {name!r} has type {type_name}, which JSON requests cannot carry")
            feed[name] = _to_array(name, inputs[name], dtype, shape)
        try:
            results = self.session.run(self.outputs, feed)
        except Exception as exc:  # onnxruntime's InvalidArgument / Fail for inputs the graph refuses
            raise BadModelInput(f"the model refused the inputs: {exc}") from None
        return {name: _json_ready(value) for name, value in zip(self.outputs, results, strict=True)}


class SafetensorsModel:
    model_format = ModelFormat.SAFETENSORS

    def __init__(self, root: Path) -> None:
        from safetensors import SafetensorError, safe_open

        self.tensors: dict[str, np.ndarray] = {}
        self.manifest: list[dict[str, Any]] = []
        for path in model_files(ModelFormat.SAFETENSORS, root):
            relative = str(path.relative_to(root))
            try:
                with safe_open(str(path), framework="numpy") as handle:
                    for name in handle.keys():
                        view = handle.get_slice(name)
                        dtype, shape = view.get_dtype(), list(view.get_shape())
                        if name in self.tensors:
                            raise ModelLoadError(f"tensor {name!r} appears in more than one file")
                        self.tensors[name] = handle.get_tensor(name)
                        self.manifest.append({"name": name, "dtype": dtype, "shape": shape, "file": relative})
            except SafetensorError as exc:
                raise ModelLoadError(f"{relative} is not a readable safetensors file: {exc}") from None
            except TypeError as exc:  # a dtype numpy has no type for (e.g. bfloat16)
                raise ModelLoadError(f"{relative}: {exc}") from None

    def describe(self) -> dict[str, Any]:
        return {
            "model_format": self.model_format.value,
            "tensors": self.manifest,
            "total_parameters": int(sum(t.size for t in self.tensors.values())),
        }

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        raise PredictionNotSupported(
            "a safetensors archive holds weights only; GET the endpoint for its tensor manifest"
        )


class TorchScriptModel:
    model_format = ModelFormat.PYTORCH

    def __init__(self, root: Path) -> None:
        self.torch = _require("torch", ModelFormat.PYTORCH)
        (path,) = model_files(ModelFormat.PYTORCH, root)
        try:
            self.module = self.torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # torch raises RuntimeError subclasses for non-TorchScript files
            raise ModelLoadError(
                f"{path.name} is not a TorchScript module torch.jit.load can read: {exc}"
            ) from None
        self.file = path.name

    def describe(self) -> dict[str, Any]:
        return {"model_format": self.model_format.value, "file": self.file}

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            tensors = {name: self.torch.as_tensor(value) for name, value in inputs.items()}
        except (ValueError, TypeError, RuntimeError) as exc:
            raise BadModelInput(f"inputs must be nested lists of numbers: {exc}") from None
        try:
            with self.torch.no_grad():
                result = self.module(**tensors)
        except Exception as exc:  # TorchScript raises RuntimeError for wrong names, shapes or types
            raise BadModelInput(f"the model refused the inputs: {exc}") from None
        if isinstance(result, Mapping):
            return {str(k): _json_ready(v.detach().numpy()) for k, v in result.items()}
        if isinstance(result, list | tuple):
            return {f"output_{i}": _json_ready(v.detach().numpy()) for i, v in enumerate(result)}
        return {"output": _json_ready(result.detach().numpy())}


class HuggingFaceModel:
    model_format = ModelFormat.HUGGINGFACE

    def __init__(self, root: Path, task_type: str | None) -> None:
        transformers = _require("transformers", ModelFormat.HUGGINGFACE)
        (config,) = model_files(ModelFormat.HUGGINGFACE, root)
        try:
            self.pipeline = transformers.pipeline(
                task=task_type or None, model=str(config.parent), device="cpu"
            )
        except Exception as exc:  # transformers raises many types for unknown tasks or broken weights
            raise ModelLoadError(f"transformers cannot build a pipeline from the archive: {exc}") from None
        self.task = self.pipeline.task

    def describe(self) -> dict[str, Any]:
        return {"model_format": self.model_format.value, "task": self.task}

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return {name: _json_ready(self.pipeline(value)) for name, value in inputs.items()}
        except Exception as exc:  # pipelines raise ValueError/TypeError/KeyError for unsuitable inputs
            raise BadModelInput(f"the model refused the inputs: {exc}") from None


def load_model(model_format: ModelFormat | str, root: Path, task_type: str | None = None) -> LoadedModel:
    model_format = ModelFormat(model_format)
    if model_format is ModelFormat.ONNX:
        return OnnxModel(root)
    if model_format is ModelFormat.SAFETENSORS:
        return SafetensorsModel(root)
    if model_format is ModelFormat.PYTORCH:
        return TorchScriptModel(root)
    return HuggingFaceModel(root, task_type)
