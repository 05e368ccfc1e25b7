"""The demo of `modelreg dev`: a tiny ONNX model registered, deployed on Ray Serve, followed to its endpoint.

The archive is generated on the fly (byte-for-byte the same every time, so its sha256 is stable across runs)
under the dev stack's state directory. Building the graph needs the `onnx` package (a dev dependency).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelreg.services.admin import publish_command, register_model
from modelreg.shared.adapters.mongo import ModelRegisteredError
from modelreg.shared.adapters.storage import ArchiveStorage
from modelreg.shared.contracts import CommandType, DeploymentCommand, ModelKey
from modelreg.shared.documents import ResourceRequirementsFields
from modelreg.shared.settings import Settings

DEMO_KEY = ModelKey("demo", "linear-onnx")
DEMO_INPUT = {"inputs": {"x": [[1.0, 2.0, 3.0]]}}
# y = x @ W + b
WEIGHTS = [[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]
BIAS = [0.25, -0.5]


def demo_onnx_model() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "demo-linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(np.array(WEIGHTS, dtype=np.float32), "W"),
            numpy_helper.from_array(np.array(BIAS, dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelreg-demo"
    )
    model.ir_version = 8
    serialized: bytes = model.SerializeToString()
    return serialized


def write_demo_archive(directory: Path) -> tuple[Path, str]:
    """`model.onnx` in a reproducible .tar.gz (no timestamps); returns its path and sha256."""
    data = demo_onnx_model()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            info = tarfile.TarInfo("model.onnx")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{DEMO_KEY.model_id}.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path.resolve(), hashlib.sha256(buffer.getvalue()).hexdigest()


async def register_and_deploy(settings: Settings, archive: Path, digest: str, requested_at: datetime) -> None:
    try:
        await register_model(
            settings,
            namespace_id=DEMO_KEY.namespace_id,
            model_id=DEMO_KEY.model_id,
            name="demo-linear",
            version="1",
            model_format="onnx",
            archive_url=archive.as_uri(),
            model_hash=digest,
            resource_requirements=ResourceRequirementsFields(num_cpus=0.25, memory=256 * 1024**2),
            task_type="regression",
            audited=False,  # the dev stack's own demo, registered again on every start
        )
    except ModelRegisteredError:
        pass  # registered by an earlier run; the archive is byte-for-byte the same
    await publish_command(
        settings,
        DeploymentCommand(
            command_id=uuid.uuid4(),
            command_type=CommandType.DEPLOY,
            namespace_id=DEMO_KEY.namespace_id,
            model_id=DEMO_KEY.model_id,
            requested_at=requested_at,
        ),
    )


def _get_json(url: str, body: dict[str, Any] | None = None, api_key: str | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def follow_until_deployed(
    api_url: str,
    since: datetime,
    interrupted: Callable[[], bool],
    api_key: str | None = None,
    timeout_s: float = 300,
) -> dict[str, Any] | None:
    """Print the demo model's status as it changes; its details once deployed, None if it failed.

    A model kept from an earlier run may still show that run's state: only changes since `since` count.
    """
    url = f"{api_url}/v1/namespaces/{DEMO_KEY.namespace_id}/models/{DEMO_KEY.model_id}"
    since = since.replace(microsecond=since.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    deadline = time.monotonic() + timeout_s
    shown = None
    while time.monotonic() < deadline and not interrupted():
        try:
            model: dict[str, Any] = _get_json(url, api_key=api_key)["model"]
        except (OSError, urllib.error.URLError, KeyError):
            time.sleep(0.5)
            continue
        status = model["deployment_status"]
        if datetime.fromisoformat(model["updated_at"].replace("Z", "+00:00")) < since:
            status = "waiting for the bridge"
        if status != shown:
            shown = status
            note = f"  ({model['deployment_message']})" if model.get("deployment_message") else ""
            print(f"  demo model {DEMO_KEY}: {status}{note}", flush=True)
        if status == "deployed":
            return model
        if status == "failed":
            return None
        time.sleep(0.5)
    if not interrupted():
        print(f"  demo model {DEMO_KEY}: not deployed after {timeout_s:.0f}s", file=sys.stderr)
    return None


def run_demo(
    settings: Settings,
    state_dir: Path,
    api_url: str,
    interrupted: Callable[[], bool],
    api_key: str | None = None,
) -> None:
    """Register and deploy the demo model, wait for its endpoint, and show how to call it."""
    try:
        # Where uploads go: the bridge fetches local archives only from the archive root.
        archive, digest = write_demo_archive(ArchiveStorage(settings).root / DEMO_KEY.namespace_id)
    except ImportError:
        print(
            "modelreg dev: the demo model needs the onnx package (make install); skipping it", file=sys.stderr
        )
        return
    details_url = f"{api_url}/v1/namespaces/{DEMO_KEY.namespace_id}/models/{DEMO_KEY.model_id}"
    auth = '-H "Authorization: Bearer $MODELREG_KEY" ' if api_key else ""
    print("\n".join(watch_lines(auth, details_url)), flush=True)
    print(f"Registering and deploying the demo model {DEMO_KEY} ({archive}) …", flush=True)
    requested_at = datetime.now(UTC)
    asyncio.run(register_and_deploy(settings, archive, digest, requested_at))
    model = follow_until_deployed(api_url, requested_at, interrupted, api_key=api_key)
    lines = ["", "Try it:", f"  curl -s {auth}{details_url}"]
    if model is not None:
        endpoint = model["deployment_info"]["endpoint"]
        try:
            answer = json.dumps(_get_json(endpoint, DEMO_INPUT))
        except (OSError, urllib.error.URLError) as exc:
            answer = f"(the endpoint did not answer yet: {exc})"
        lines += [
            f"  curl -s -X POST {endpoint} -H 'content-type: application/json' -d '{json.dumps(DEMO_INPUT)}'",
            f"    → {answer}",
            f"  curl -s {endpoint}    # the model's inputs and outputs",
        ]
    lines += [
        "Watch it undeploy and deploy again, live (docs/watch.md):",
        f"  curl -N {auth}{details_url}/watch",
        f"  .venv/bin/modelreg models undeploy {DEMO_ARGS}",
        f"  .venv/bin/modelreg models deploy {DEMO_ARGS} --wait",
        "",
    ]
    print("\n".join(lines), flush=True)


DEMO_ARGS = f"--namespace {DEMO_KEY.namespace_id} --model-id {DEMO_KEY.model_id}"


def watch_lines(auth: str, details_url: str) -> list[str]:
    """How to watch the demo model deploy live, from another shell (printed before it is deployed)."""
    return [
        "Watch the demo model deploy live from another shell (after the export lines above):",
        f"  curl -N {auth}{details_url}/watch",
        f"  .venv/bin/modelreg models watch {DEMO_ARGS}",
        "",
    ]
