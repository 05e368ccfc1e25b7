"""How a model is named on Ray Serve: application name, deployment name. Pure functions.

The application name carries the model's key reversibly, so after a restart the bridge knows which model
every application belongs to without any state of its own. The route prefix (a readable URL path) and the
endpoint URL live in `shared/serve_routes.py`, which the API uses too; they are re-exported here.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from modelreg.shared.cluster_routing import DEFAULT_CLUSTER
from modelreg.shared.contracts import ModelFormat, ModelKey
from modelreg.shared.serve_routes import endpoint_url as endpoint_url
from modelreg.shared.serve_routes import route_prefix as route_prefix

# Ray Serve puts application names into replica ids ("app#deployment#id") and log file names.
MAX_APP_NAME = 256
# Kept as they are; everything else is percent-encoded, so "." can separate the parts.
_APP_NAME_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class NamingError(ValueError):
    """The model cannot be given a Ray Serve name."""


def _encode(part: str) -> str:
    # urllib's quote() never escapes ".", which separates our parts; hence this small encoder.
    return "".join(
        char if char in _APP_NAME_SAFE else "".join(f"%{byte:02X}" for byte in char.encode()) for char in part
    )


def app_name(prefix: str, key: ModelKey) -> str:
    """`{prefix}.{namespace_id}.{model_id}`, each id percent-encoded outside [A-Za-z0-9_-]."""
    name = f"{prefix}.{_encode(key.namespace_id)}.{_encode(key.model_id)}"
    if len(name) > MAX_APP_NAME:
        raise NamingError(
            f"namespace_id and model_id are too long for a Ray Serve application name "
            f"({len(name)} > {MAX_APP_NAME} characters once encoded)"
        )
    return name


def parse_app_name(prefix: str, name: str) -> ModelKey | None:
    """The model an application belongs to, or None when the application is not one of ours."""
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != prefix or not parts[1] or not parts[2]:
        return None
    key = ModelKey(unquote(parts[1]), unquote(parts[2]))
    # Only names this module could have produced (rejects hand-made look-alikes).
    if f"{prefix}.{_encode(key.namespace_id)}.{_encode(key.model_id)}" != name:
        return None
    return key


def check_model_hash(model_hash: str) -> str:
    """The model's sha256 in canonical form; the archive cache and deployment names are keyed by it."""
    normalized = model_hash.strip().lower()
    if not _SHA256_HEX.match(normalized):
        raise NamingError(f"model_hash {model_hash[:80]!r} is not a sha256 hex digest")
    return normalized


def deployment_name(model_format: str, model_hash: str) -> str:
    """The Serve deployment inside the application: `{model_format}-{first 16 hex of the sha256}`.

    Ray Serve shows it in the applications' status, so the bridge can tell which archive and format an
    application serves without keeping any state.
    """
    return f"{ModelFormat(model_format).value}-{check_model_hash(model_hash)[:16]}"


def parse_deployment_name(name: str | None) -> tuple[ModelFormat, str] | None:
    """(model_format, sha256 prefix) of a deployment named by `deployment_name`, else None."""
    if not name or "-" not in name:
        return None
    fmt, _, digest = name.rpartition("-")
    if fmt not in {f.value for f in ModelFormat} or not re.fullmatch(r"[0-9a-f]{16}", digest):
        return None
    return ModelFormat(fmt), digest


def bridge_consumer_group(base: str, cluster: str) -> str:
    """The bridge's consumer group on the commands topic: one per cluster, so every cluster's bridge sees
    every command (and carries out its own). The default cluster keeps the plain name."""
    return base if cluster == DEFAULT_CLUSTER else f"{base}-{cluster}"
