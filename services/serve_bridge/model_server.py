"""The one generic Ray Serve application class: every model runs as an instance of `ModelServer`.

It runs inside Ray worker processes, so it imports only what a replica needs (no Kafka, no MongoDB).
The bridge's Ray adapter turns it into a Serve deployment.

    GET  {endpoint}   what the model is: inputs/outputs (onnx) or the tensor manifest (safetensors)
    POST {endpoint}   {"inputs": {"<name>": <nested list>}}  →  {"outputs": {"<name>": <nested list>}}

Errors use the registry's error shape: {"success": false, "status", "error": {"message", "type", "code"}}.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from modelreg.services.serve_bridge.loaders import BadModelInput, PredictionNotSupported, load_model
from modelreg.services.serve_bridge.materialize import ArchiveProblem, prepare_model_files
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.settings import Settings

MAX_REQUEST_BYTES = 64 * 1024 * 1024
_DEFAULTS = Settings()


class ModelSpec(msgspec.Struct, kw_only=True, frozen=True):
    """Everything a replica needs to load its model, read by the bridge from the model's document."""

    namespace_id: str
    model_id: str
    model_format: str
    model_hash: str
    archive_url: str
    cache_dir: str
    task_type: str | None = None
    s3_endpoint_url: str | None = None
    # Where the replica may fetch the archive from, and the unpacking caps: the bridge's settings.
    s3_bucket: str | None = None
    archive_root: str = ""
    archive_allowed_roots: str = ""
    max_archive_members: int = _DEFAULTS.max_archive_members
    max_unpacked_bytes: int = _DEFAULTS.max_unpacked_bytes
    max_compression_ratio: int = _DEFAULTS.max_compression_ratio
    # The registry's archive route and the read key replicas on other machines fetch the archive with.
    archive_registry_url: str | None = None
    archive_registry_key: str = ""


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: dict[str, Any]


class ModelArchiveError(RuntimeError):
    """Raised by the constructor, so Ray Serve reports the deployment as failed with this message."""


def _json(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _error(status: int, error_type: str, code: str, message: str) -> Response:
    return _json(
        {"success": False, "status": status, "error": {"message": message, "type": error_type, "code": code}},
        status,
    )


class ModelServer:
    # Ray Serve awaits a deployment's async constructor; Python's typing knows only synchronous ones.
    async def __init__(self, spec: ModelSpec) -> None:  # type: ignore[misc]
        self.spec = spec
        storage = ArchiveStorage(
            Settings(
                s3_endpoint_url=spec.s3_endpoint_url,
                s3_bucket=spec.s3_bucket,
                archive_root=spec.archive_root,
                archive_allowed_roots=spec.archive_allowed_roots,
                max_archive_members=spec.max_archive_members,
                max_unpacked_bytes=spec.max_unpacked_bytes,
                max_compression_ratio=spec.max_compression_ratio,
                bridge_archive_registry_url=spec.archive_registry_url,
                bridge_archive_registry_key=spec.archive_registry_key,
            )
        )
        try:
            files = await prepare_model_files(
                storage, spec.archive_url, spec.model_hash, Path(spec.cache_dir)
            )
        except ArchiveProblem as exc:
            raise ModelArchiveError(str(exc)) from None
        self.model = await asyncio.to_thread(load_model, spec.model_format, files, spec.task_type)
        self.loaded_at = datetime.now(UTC)

    def describe(self) -> dict[str, Any]:
        return {
            "namespace_id": self.spec.namespace_id,
            "model_id": self.spec.model_id,
            "model_hash": self.spec.model_hash,
            "loaded_at": self.loaded_at,
            **self.model.describe(),
        }

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            return _json(self.describe())
        if request.method != "POST":
            return _error(405, "MethodNotAllowedError", "method_not_allowed", "use GET or POST")
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            return _error(
                413, "PayloadTooLargeError", "payload_too_large", f"at most {MAX_REQUEST_BYTES} bytes"
            )
        try:
            payload = msgspec.json.decode(body, type=PredictRequest)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _error(
                400,
                "BadRequestError",
                "invalid_request",
                f'expected {{"inputs": {{"<name>": [...]}}}}: {exc}',
            )
        try:
            outputs = await asyncio.to_thread(self.model.predict, payload.inputs)
        except BadModelInput as exc:
            return _error(400, "BadRequestError", "invalid_inputs", str(exc))
        except PredictionNotSupported as exc:
            return _error(405, "MethodNotAllowedError", "prediction_not_supported", str(exc))
        return _json({"outputs": outputs})
