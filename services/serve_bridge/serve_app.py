"""The application builder Ray Serve imports on the cluster (`import_path` of every model's application).

It runs in the cluster's own Python environment (the Ray image carries this package, `deploy/Dockerfile`),
never in the bridge: the bridge only names it in the declarative config it PUTs to the dashboard.
"""

from __future__ import annotations

from typing import Any

import msgspec
from ray import serve
from ray.serve import Application

from modelreg.services.serve_bridge.model_server import ModelServer, ModelSpec


def build_application(args: dict[str, Any]) -> Application:
    """`args`: `deployment_name` and the model's `spec` (see `serve_config.application_config`)."""
    spec = msgspec.convert(args["spec"], ModelSpec)
    # Ray annotates serve.deployment as returning the decorator even when it is given the class.
    deployment = serve.deployment(ModelServer).options(name=str(args["deployment_name"]))  # type: ignore[attr-defined]
    application: Application = deployment.bind(spec)
    return application
