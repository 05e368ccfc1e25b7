"""Swagger UI without a CDN: its files come from the installed `swagger-ui-bundle-v2` package (pinned by the
lock) and the page's start-up script is one of the console's own files, so the page runs under the console's
Content-Security-Policy (no inline script or style)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from litestar import Request, Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

SWAGGER_ASSETS_PATH = "/schema/assets"
SWAGGER_UI_DIRECTORY = Path(str(swagger_ui_bundle.swagger_ui_path))
OPENAPI_JSON_PATH = "/schema/openapi.json"


class OfflineSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Litestar's Swagger UI plugin with every asset served by this API (`render` is its documented hook)."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{SWAGGER_ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{SWAGGER_ASSETS_PATH}/favicon-32x32.png'>",
            style="<link rel='stylesheet' href='/ui/static/swagger.css'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema.get("info", {}).get("title", "API")))
        page = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  {self.favicon}
  <link rel="stylesheet" href="{self.css_url}">
  {self.style}
  <script src="{self.js_url}" defer></script>
  <script src="{self.standalone_preset_js_url}" defer></script>
  <script src="/ui/static/swagger-init.js" defer></script>
</head>
<body>
  <div id="swagger-container" data-openapi-url="{OPENAPI_JSON_PATH}"></div>
</body>
</html>
"""
        return page.encode()


def swagger_assets_router() -> Router:
    """Swagger UI's JS and CSS from the installed package, at /schema/assets/."""
    return create_static_files_router(
        path=SWAGGER_ASSETS_PATH, directories=[SWAGGER_UI_DIRECTORY], name="swagger-assets"
    )
