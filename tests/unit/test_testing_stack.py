"""`RegistryStack.client`: httpx's own options pass through, the stack's key stays (no server needed)."""

from __future__ import annotations

from pathlib import Path

from modelreg.services.testing.stack import RegistryStack


def test_client_takes_httpx_options_and_keeps_its_key(tmp_path: Path) -> None:
    stack = RegistryStack(tmp_path)  # not started: a client is only configured here
    stack.admin_key = "mrk_admin"
    with stack.client() as default:
        assert default.timeout.read == 30
        assert default.headers["Authorization"] == "Bearer mrk_admin"
    with stack.client("mrk_team", timeout=5, headers={"X-Request-Id": "r1"}) as api:
        assert api.timeout.read == 5
        assert api.headers["Authorization"] == "Bearer mrk_team"
        assert api.headers["X-Request-Id"] == "r1"
        assert str(api.base_url) == stack.api_url
