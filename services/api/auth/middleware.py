"""Bearer API key authentication for every /v1 route (Litestar's authentication middleware)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from modelreg.services.api.errors import ApiError
from modelreg.services.keys.service import KeyService

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="modelreg"'}


def _unauthorized(message: str, code: str) -> ApiError:
    return ApiError(401, message, code=code, headers=CHALLENGE)


class ApiKeyAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if not header:
            raise _unauthorized("Missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(
                "Malformed Authorization header: expected 'Bearer <key>'", "invalid_authorization"
            )
        keys: KeyService = connection.app.state.key_service
        principal = await keys.authenticate(token.strip())
        if principal is None:
            raise _unauthorized("Invalid or revoked API key", "invalid_api_key")
        return AuthenticationResult(user=principal, auth=principal.key_prefix)
