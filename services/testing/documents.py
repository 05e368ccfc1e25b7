"""Model documents as another service might insert them straight into the registry's `custom_models`
collection: only the seed's fields, so a test (or a benchmark) can fill a database without the API."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from typing import Any

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
_counter = itertools.count(1)


def seed_model_document(
    namespace_id: str = "ns_test", model_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """A document with only the seed's fields (an ONNX model, not deployed, created at BASE_TIME), any of
    them replaced by `overrides`; `model_id` defaults to a new `model_<n>`."""
    model_id = model_id or f"model_{next(_counter)}"
    document = {
        "model_id": model_id,
        "namespace_id": namespace_id,
        "name": f"name-{model_id}",
        "version": "1.0.0",
        "model_archive_url": f"s3://models/{namespace_id}/{model_id}.tar.gz",
        "model_format": "onnx",
        "model_hash": hashlib.sha256(model_id.encode()).hexdigest(),
        "deployed": False,
        "deployment_info": None,
        "framework": None,
        "task_type": "classification",
        "input_schema": {"x": "float[]"},
        "output_schema": None,
        "resource_requirements": {"num_cpus": 1.0, "num_gpus": 0, "memory": 4294967296},
        "created_at": BASE_TIME,
        "updated_at": BASE_TIME,
    }
    document.update(overrides)
    return document
