"""`GET /v1/whoami`: who the presented key is. Answered from the authenticated principal alone, it touches
no database once the key's record is cached: the API's own ceiling in the benchmarks (docs/performance.md)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from modelreg.services.api.errors import ERROR_RESPONSES
from modelreg.shared.api_keys import Principal


class WhoAmIResponse(msgspec.Struct, kw_only=True):
    key_prefix: str
    namespaces: list[str]
    admin: bool


@get(
    "/whoami",
    summary="The calling key",
    description=(
        "The presented API key's prefix, the namespaces it reaches and whether it is an admin key "
        "(admin keys reach every namespace)."
    ),
    operation_id="whoami_v1_whoami_get",
    tags=["Keys"],
    responses={401: ERROR_RESPONSES[401]},
)
async def whoami(request: Request[Principal, Any, Any]) -> WhoAmIResponse:
    principal = request.user
    return WhoAmIResponse(
        key_prefix=principal.key_prefix, namespaces=sorted(principal.namespaces), admin=principal.admin
    )
