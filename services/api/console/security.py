"""Security headers of the browser-facing pages (the console under /ui and the OpenAPI viewer under /schema).

Every script and stylesheet of those pages is a file served by this API, so the policy allows only 'self':
no inline script or style, no other origin, no plugins, and the pages cannot be framed.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Swagger UI's stylesheet draws its icons from data: URIs.
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)

BROWSER_PAGE_PREFIXES = ("/ui", "/schema")


def is_browser_page(path: str) -> bool:
    """The console and the OpenAPI viewer, and nothing else (the /v1 API answers JSON to any client)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in BROWSER_PAGE_PREFIXES)


class BrowserPageHeaders:
    """ASGI middleware: adds the security headers to every answer under /ui and /schema."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not is_browser_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
