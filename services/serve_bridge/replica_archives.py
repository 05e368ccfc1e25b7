"""PURE: where a Serve replica fetches its model's archive from.

A replica on the bridge's machine (or with the same bucket) fetches the model's own URL (`file://`, `s3://`).
A replica on another machine that cannot read the registry's storage fetches it from the registry's archive
route, `GET {MODELREG_BRIDGE_ARCHIVE_REGISTRY_URL}/v1/namespaces/{ns}/models/{id}/archive`, with a read key.
"""

from __future__ import annotations

from urllib.parse import quote

from modelreg.shared.contracts import ModelKey
from modelreg.shared.settings import Settings


def registry_archive_url(base_url: str, key: ModelKey) -> str:
    """The registry's archive route of a model."""
    namespace, model = quote(key.namespace_id, safe=""), quote(key.model_id, safe="")
    return f"{base_url.rstrip('/')}/v1/namespaces/{namespace}/models/{model}/archive"


def replica_archive_url(settings: Settings, key: ModelKey, model_archive_url: str) -> str:
    """The registry's route when MODELREG_BRIDGE_ARCHIVE_REGISTRY_URL is set, else the model's own URL."""
    if settings.bridge_archive_registry_url:
        return registry_archive_url(settings.bridge_archive_registry_url, key)
    return model_archive_url
