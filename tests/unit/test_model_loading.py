"""Archives to served models without Ray: fetch + hash check + safe unpacking, loading by format, requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from starlette.requests import Request

from modelreg.services.serve_bridge.loaders import BadModelInput, ModelLoadError, load_model, model_files
from modelreg.services.serve_bridge.materialize import ArchiveProblem, prepare_model_files
from modelreg.services.serve_bridge.model_server import ModelArchiveError, ModelServer, ModelSpec
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.contracts import ModelFormat
from modelreg.shared.settings import Settings
from tests.model_archives import (
    SAFETENSORS_TENSORS,
    archive_with_link,
    expected_linear,
    linear_onnx_bytes,
    safetensors_bytes,
    tar_gz,
    write_archive,
)


@pytest.fixture
def storage(tmp_path: Path) -> ArchiveStorage:
    # The tests' archives are written anywhere under tmp_path: allowed explicitly.
    return ArchiveStorage(
        Settings(archive_root=str(tmp_path / "archives"), archive_allowed_roots=str(tmp_path))
    )


async def test_archive_is_fetched_checked_unpacked_and_cached(tmp_path: Path, storage) -> None:
    path, digest = write_archive(tmp_path / "src", "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()}))
    cache = tmp_path / "cache"

    files = await prepare_model_files(storage, path.as_uri(), digest.upper(), cache)

    assert (files / "model.onnx").read_bytes() == linear_onnx_bytes()
    assert not any((cache / "downloads").iterdir())  # nothing left behind
    path.unlink()  # cached by hash: the archive is not needed again
    assert await prepare_model_files(storage, path.as_uri(), digest, cache) == files


async def test_plain_paths_are_archive_urls_too(tmp_path: Path, storage) -> None:
    path, digest = write_archive(tmp_path, "m.tar.gz", tar_gz({"w.safetensors": safetensors_bytes()}))
    files = await prepare_model_files(storage, str(path), digest, tmp_path / "cache")
    assert (files / "w.safetensors").is_file()


async def test_hash_mismatch_is_refused_and_nothing_is_cached(tmp_path: Path, storage) -> None:
    path, digest = write_archive(tmp_path, "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()}))
    wrong = "0" * 64
    with pytest.raises(ArchiveProblem) as caught:
        await prepare_model_files(storage, path.as_uri(), wrong, tmp_path / "cache")
    # The tenant learns that it does not match, not what the file there really is.
    assert str(caught.value) == "the archive does not match the model's model_hash"
    assert caught.value.reason == "hash_mismatch" and digest not in str(caught.value)
    assert not (tmp_path / "cache" / "models").exists()


@pytest.mark.parametrize(
    ("data", "reason", "text"),
    [
        (b"this is not gzip", "invalid_archive", "not a readable .tar.gz"),
        (archive_with_link(), "unsafe_archive", "link 'model.onnx'"),
        (tar_gz({"../escape.onnx": b"x"}), "unsafe_archive", "escapes the archive"),
        (tar_gz({"/abs.onnx": b"x"}), "unsafe_archive", "absolute path"),
    ],
    ids=["not-gzip", "link", "dotdot", "absolute"],  # gzip headers hold a time stamp: no ids from the bytes
)
async def test_corrupt_or_unsafe_archives_are_refused(tmp_path: Path, storage, data, reason, text) -> None:
    path, digest = write_archive(tmp_path, "bad.tar.gz", data)
    with pytest.raises(ArchiveProblem, match=text) as caught:
        await prepare_model_files(storage, path.as_uri(), digest, tmp_path / "cache")
    assert caught.value.reason == reason
    assert not (tmp_path / "escape.onnx").exists()


async def test_missing_archive_and_bad_hash_are_clear(tmp_path: Path, storage) -> None:
    with pytest.raises(ArchiveProblem, match="^the model archive could not be fetched$"):
        await prepare_model_files(storage, (tmp_path / "none.tar.gz").as_uri(), "0" * 64, tmp_path / "c")
    with pytest.raises(ArchiveProblem, match="not a sha256 hex digest"):
        await prepare_model_files(storage, "file:///x", "../../etc", tmp_path / "c")


def test_onnx_model_predicts_named_outputs(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(linear_onnx_bytes())
    model = load_model("onnx", tmp_path)
    x = [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]

    outputs = model.predict({"x": x})

    assert list(outputs) == ["y"]
    np.testing.assert_allclose(outputs["y"], expected_linear(x), rtol=1e-6)
    assert model.describe()["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": [None, 3]}]


@pytest.mark.parametrize(
    ("inputs", "text"),
    [
        ({}, "missing \\['x'\\]"),
        ({"x": [[1, 2, 3]], "z": [1]}, "unknown \\['z'\\]"),
        ({"x": [[1, 2]]}, "dimension 1 must be 3, got 2"),
        ({"x": [1, 2, 3]}, "expected 2 dimensions"),
        ({"x": [[1, 2, 3], [1, 2]]}, "not a rectangular nested list of float32"),
        ({"x": [["a", "b", "c"]]}, "not a rectangular nested list of float32"),
    ],
)
def test_onnx_inputs_are_checked_with_clear_messages(tmp_path: Path, inputs, text) -> None:
    (tmp_path / "model.onnx").write_bytes(linear_onnx_bytes())
    with pytest.raises(BadModelInput, match=text):
        load_model("onnx", tmp_path).predict(inputs)


def test_safetensors_model_loads_every_tensor(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.safetensors").write_bytes(safetensors_bytes())
    model = load_model("safetensors", tmp_path)

    described = model.describe()

    assert sorted(described["tensors"], key=lambda t: t["name"]) == [
        {"name": "encoder.bias", "dtype": "F32", "shape": [4], "file": "sub/w.safetensors"},
        {"name": "encoder.weight", "dtype": "F32", "shape": [3, 4], "file": "sub/w.safetensors"},
        {"name": "step", "dtype": "I64", "shape": [1], "file": "sub/w.safetensors"},
    ]
    assert described["total_parameters"] == sum(t.size for t in SAFETENSORS_TENSORS.values())
    np.testing.assert_array_equal(model.tensors["encoder.weight"], SAFETENSORS_TENSORS["encoder.weight"])


@pytest.mark.parametrize(
    ("model_format", "files", "text"),
    [
        ("onnx", {"weights.bin": b"x"}, "holds no .onnx file"),
        ("onnx", {"a.onnx": b"x", "b.onnx": b"y"}, "several .onnx files"),
        ("onnx", {"model.onnx": b"not a protobuf"}, "onnxruntime cannot load model.onnx"),
        ("safetensors", {"w.safetensors": b"garbage"}, "not a readable safetensors file"),
        ("safetensors", {"model.onnx": b"x"}, "holds no .safetensors file"),
        ("pytorch", {"model.pt": b"x"}, "needs the Python package 'torch', which is not installed"),
        ("huggingface", {"config.json": b"{}"}, "needs the Python package 'transformers'"),
        ("huggingface", {"model.bin": b"x"}, "no config.json"),
    ],
)
def test_unloadable_models_fail_with_a_reason(tmp_path: Path, model_format, files, text) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(ModelLoadError, match=text):
        model_files(ModelFormat(model_format), tmp_path)
        load_model(model_format, tmp_path)


def request(method: str, body: bytes = b"") -> Request:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": method, "path": "/ns/m", "headers": [], "query_string": b""}
    return Request(scope, receive)


async def started_server(tmp_path: Path, model_format: str, files: dict[str, bytes]) -> ModelServer:
    path, digest = write_archive(tmp_path / "src", "m.tar.gz", tar_gz(files))
    spec = ModelSpec(
        namespace_id="ns",
        model_id="m",
        model_format=model_format,
        model_hash=digest,
        archive_url=path.as_uri(),
        cache_dir=str(tmp_path / "cache"),
        archive_root=str(tmp_path / "src"),
    )
    server = ModelServer.__new__(ModelServer)
    await server.__init__(spec)  # how Ray Serve runs an async constructor
    return server


async def test_server_answers_predictions_and_refuses_bad_requests_in_the_error_shape(tmp_path: Path) -> None:
    server = await started_server(tmp_path, "onnx", {"model.onnx": linear_onnx_bytes()})

    ok = await server(request("POST", json.dumps({"inputs": {"x": [[1, 2, 3]]}}).encode()))
    described = await server(request("GET"))
    bad_json = await server(request("POST", b"{not json"))
    bad_shape = await server(request("POST", json.dumps({"inputs": {"x": [[1, 2]]}}).encode()))
    wrong_method = await server(request("DELETE"))

    assert ok.status_code == 200
    np.testing.assert_allclose(json.loads(ok.body)["outputs"]["y"], expected_linear([[1, 2, 3]]), rtol=1e-6)
    assert json.loads(described.body)["model_id"] == "m"
    for response, status, code in [(bad_json, 400, "invalid_request"), (bad_shape, 400, "invalid_inputs")]:
        body = json.loads(response.body)
        assert (response.status_code, body["success"], body["status"]) == (status, False, status)
        assert body["error"]["code"] == code and body["error"]["type"] == "BadRequestError"
    assert wrong_method.status_code == 405


async def test_safetensors_server_describes_weights_and_refuses_predictions(tmp_path: Path) -> None:
    server = await started_server(tmp_path, "safetensors", {"w.safetensors": safetensors_bytes()})

    manifest = json.loads((await server(request("GET"))).body)
    refused = await server(request("POST", b'{"inputs": {}}'))

    assert {t["name"] for t in manifest["tensors"]} == set(SAFETENSORS_TENSORS)
    assert refused.status_code == 405
    assert json.loads(refused.body)["error"]["code"] == "prediction_not_supported"


async def test_server_constructor_fails_on_a_bad_archive_so_serve_reports_it(tmp_path: Path) -> None:
    path, _ = write_archive(tmp_path, "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()}))
    spec = ModelSpec(
        namespace_id="ns",
        model_id="m",
        model_format="onnx",
        model_hash="1" * 64,
        archive_url=path.as_uri(),
        cache_dir=str(tmp_path / "cache"),
        archive_allowed_roots=str(tmp_path),
    )
    server = ModelServer.__new__(ModelServer)
    with pytest.raises(ModelArchiveError, match="does not match"):
        await server.__init__(spec)


async def test_server_fetches_only_from_the_roots_the_bridge_allows(tmp_path: Path) -> None:
    path, digest = write_archive(tmp_path, "m.tar.gz", tar_gz({"model.onnx": linear_onnx_bytes()}))
    spec = ModelSpec(
        namespace_id="ns",
        model_id="m",
        model_format="onnx",
        model_hash=digest,
        archive_url=path.as_uri(),
        cache_dir=str(tmp_path / "cache"),
        archive_root=str(tmp_path / "archives"),
    )
    server = ModelServer.__new__(ModelServer)
    with pytest.raises(ModelArchiveError, match="^the model archive could not be fetched$"):
        await server.__init__(spec)
