"""The console's routes: the page shell at /ui and its files at /ui/static (no key: the page holds none; its
script sends the key the user pasted to the /v1 routes, as any API client does)."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from pathlib import Path

from litestar import Controller, MediaType, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from modelreg.services.api.console.swagger import swagger_assets_router
from modelreg.shared.deployment_rules import STATUS_AFTER

STATIC_DIRECTORY = Path(str(resources.files("modelreg.services.api.console") / "static"))
UI_PATH = "/ui"


@cache
def page_shell() -> str:
    """index.html with the event-type → status table the timeline colours by (the rules' own table)."""
    status_after = {str(event_type): str(status) for event_type, status in STATUS_AFTER.items()}
    template = (STATIC_DIRECTORY / "index.html").read_text(encoding="utf-8")
    return template.replace("{{STATUS_AFTER}}", html.escape(json.dumps(status_after), quote=True))


class ConsoleController(Controller):
    path = UI_PATH
    include_in_schema = False

    @get("/", media_type=MediaType.HTML, cache_control=CacheControlHeader(no_store=True))
    async def page(self) -> Response[str]:
        """One page for the whole console; its script routes by the URL's fragment (#/ns/demo, …)."""
        return Response(page_shell(), media_type=MediaType.HTML)


def console_route_handlers() -> list[type[Controller] | Router]:
    """What app.py mounts: the page, its files, and Swagger UI's files."""
    static = create_static_files_router(
        path=f"{UI_PATH}/static", directories=[STATIC_DIRECTORY], name="console-static"
    )
    return [static, ConsoleController, swagger_assets_router()]
