"""Who the request's writes are recorded as: its API key's prefix and its request id."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request

from modelreg.shared.audit import Actor, current_actor


async def bind_actor(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook: runs in the handler's context, so the services' audit entries see it."""
    key_prefix = request.scope.get("auth")  # set by the API key middleware once a key is accepted
    request_id = structlog.contextvars.get_contextvars().get("request_id")  # bound by the access log
    current_actor.set(
        Actor(
            via="api",
            key_prefix=key_prefix if isinstance(key_prefix, str) else None,
            request_id=request_id if isinstance(request_id, str) else None,
        )
    )
