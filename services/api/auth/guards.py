"""Namespace authorization: a key only reaches the namespaces it was created for (admin keys reach all).

Reads of another namespace answer exactly as if nothing were there (404), so a key cannot probe which
models exist elsewhere; writes answer 403.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler

from modelreg.services.api.domain_errors import ModelNotFound, NamespaceNotFound
from modelreg.services.api.errors import ApiError
from modelreg.shared.api_keys import Principal
from modelreg.shared.contracts import ModelKey

READ_METHODS = frozenset({"GET", "HEAD"})


def namespace_guard(
    connection: ASGIConnection[BaseRouteHandler, Principal, str, State], _: BaseRouteHandler
) -> None:
    namespace_id = connection.path_params.get("namespace_id")
    method = connection.scope.get("method")  # every /v1 route is an HTTP route: the scope has one
    if namespace_id is None or method == "OPTIONS":
        return  # OPTIONS (CORS preflight) is answered without a key and reveals no data
    principal: Principal = connection.user
    if principal.can_access(namespace_id):
        return
    if method in READ_METHODS:
        model_id = connection.path_params.get("model_id")
        raise (
            ModelNotFound(ModelKey(namespace_id, model_id))
            if model_id is not None
            else NamespaceNotFound(namespace_id)
        )
    raise ApiError(
        403,
        "This API key has no access to the namespace",
        code="namespace_forbidden",
        details={"namespace_id": namespace_id},
    )


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Routes of the whole organization (shared models' writes) need an admin key."""
    principal: Principal = connection.user
    if not principal.admin:
        raise ApiError(403, "This route needs an admin API key", code="admin_required")
