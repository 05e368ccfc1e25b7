"""Where a model is served: its Ray Serve route prefix and endpoint URL. Pure functions.

The bridge deploys each model under `route_prefix(key)` and publishes `endpoint_url(serve_base_url(...), key)`
in its events; the API announces the same URL when a model is uploaded, before it is deployed.
"""

from __future__ import annotations

import hashlib
import re

from modelreg.shared.contracts import ModelKey
from modelreg.shared.settings import Settings

_ROUTE_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]")
MAX_ROUTE_SEGMENT = 64


def _route_segment(part: str) -> str:
    slug = _ROUTE_UNSAFE.sub("-", part)
    if slug == part and len(slug) <= MAX_ROUTE_SEGMENT and slug not in (".", ".."):
        return slug
    # Changed or shortened: a digest of the original keeps two different ids on different routes.
    digest = hashlib.sha256(part.encode()).hexdigest()[:10]
    return f"{slug[:MAX_ROUTE_SEGMENT].strip('.')}-{digest}"


def route_prefix(key: ModelKey) -> str:
    """`/{namespace_id}/{model_id}`, with characters outside [A-Za-z0-9._~-] replaced."""
    return f"/{_route_segment(key.namespace_id)}/{_route_segment(key.model_id)}"


def endpoint_url(base_url: str, key: ModelKey) -> str:
    return base_url.rstrip("/") + route_prefix(key)


def serve_base_url(settings: Settings) -> str:
    """`MODELREG_SERVE_PUBLIC_URL`, else `http://{serve_host}:{serve_port}` (loopback for a wildcard host)."""
    if settings.serve_public_url:
        return settings.serve_public_url
    host = settings.serve_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening on every interface: loopback is one of them
    return f"http://{host}:{settings.serve_port}"


def model_endpoint(settings: Settings, key: ModelKey) -> str:
    """The URL the model is (or will be) served at once deployed."""
    return endpoint_url(serve_base_url(settings), key)
