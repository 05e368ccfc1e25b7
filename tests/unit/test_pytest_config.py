"""The suite's pytest configuration: plugins that no test uses stay unloaded (each costs every pytest process,
xdist workers included, its import)."""

from __future__ import annotations

import pytest


def test_unused_plugins_are_not_loaded(pytestconfig: pytest.Config) -> None:
    assert not pytestconfig.pluginmanager.has_plugin("faker")
    assert pytestconfig.pluginmanager.is_blocked("faker")
