"""Which answers get the browser pages' security headers, and the policy itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modelreg.services.api.console.security import CONTENT_SECURITY_POLICY, is_browser_page


def test_the_console_and_the_openapi_viewer_are_browser_pages() -> None:
    for path in (
        "/ui",
        "/ui/",
        "/ui/static/console.js",
        "/schema",
        "/schema/swagger",
        "/schema/assets/x.css",
    ):
        assert is_browser_page(path), path


def test_the_api_and_lookalike_paths_are_not() -> None:
    for path in ("/", "/v1/namespaces/ui/models", "/uix", "/schemas", "/health/live", "/metrics", "/v1/ui"):
        assert not is_browser_page(path), path


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz/._-", max_size=30))
def test_only_paths_under_the_two_prefixes_match(rest: str) -> None:
    path = "/v1/" + rest
    assert not is_browser_page(path)
    assert is_browser_page("/ui/" + rest) and is_browser_page("/schema/" + rest)


def test_the_policy_allows_no_inline_code_and_no_other_origin() -> None:
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "*" not in CONTENT_SECURITY_POLICY


def test_every_console_file_is_package_data_of_the_wheel() -> None:
    import tomllib
    from pathlib import Path

    from modelreg.services.api.console.controller import STATIC_DIRECTORY

    root = Path(__file__).resolve().parents[2]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert package_data["modelreg.services.api.console"] == ["static/*"]
    # "static/*" takes files only: the console keeps its files flat.
    assert [p.name for p in STATIC_DIRECTORY.iterdir() if p.is_dir()] == []
    assert {"index.html", "console.js", "console.css", "swagger-init.js"} <= {
        p.name for p in STATIC_DIRECTORY.iterdir()
    }
