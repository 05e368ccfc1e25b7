"""The console's pages and Swagger UI through the real app: no key needed for the page shells, every asset
served by the API itself (no other origin anywhere), no inline script or style, and the security headers on
/ui and /schema only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import pytest

from modelreg.services.api.console.security import CONTENT_SECURITY_POLICY
from tests.api_support import SharedApi, shared_api


class Assets(HTMLParser):
    """The script and stylesheet references of a page, and anything inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.inline.extend(f"{tag} {name}" for name in attributes if name.startswith("on") or name == "style")
        if tag == "script":
            if attributes.get("src"):
                self.urls.append(attributes["src"] or "")
            else:
                self.inline.append("script")
        elif tag == "link":
            self.urls.append(attributes.get("href") or "")
        elif tag == "style":
            self.inline.append("style")


def assets_of(page: str) -> Assets:
    parser = Assets()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app (no key) for the module: every test only reads pages and documents."""
    async with shared_api(infra, tmp_path_factory.mktemp("console"), authenticated=False) as api:
        yield api


@pytest.fixture
async def client(shared: SharedApi):
    return await shared.client()


@pytest.mark.parametrize("path", ["/ui", "/schema/swagger", "/schema"])
async def test_pages_load_only_local_files_and_nothing_inline(client, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assets = assets_of(response.text)
    assert assets.inline == []
    assert assets.urls and all(url.startswith("/") and not url.startswith("//") for url in assets.urls)
    for url in assets.urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
    assert "https://" not in response.text and "http://" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui",
        "/ui/static/console.js",
        "/schema/swagger",
        "/schema/assets/swagger-ui.css",
        "/schema/openapi.json",
    ],
)
async def test_browser_pages_carry_a_csp_without_unsafe_inline(client, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_the_api_and_probes_carry_no_page_policy(client) -> None:
    for path in ("/health/live", "/v1/namespaces/demo/models"):
        response = await client.get(path)
        assert "content-security-policy" not in response.headers, path


async def test_the_page_shell_needs_no_key_and_holds_none(client) -> None:
    response = await client.get("/ui")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    # The rules' own event → status table, for the timeline's colours.
    assert "deployment.ready&quot;: &quot;deployed" in response.text


async def test_unknown_console_files_answer_404(client) -> None:
    assert (await client.get("/ui/static/nope.js")).status_code == 404
    assert (await client.get("/schema/assets/nope.js")).status_code == 404


async def test_the_openapi_document_leaves_the_console_out(client) -> None:
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith(("/ui", "/schema"))]
