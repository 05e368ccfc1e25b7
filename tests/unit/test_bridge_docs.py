"""docs/bridge.md states what the bridge does: the status → event table, the settings, the command schema."""

from __future__ import annotations

import re
from pathlib import Path

from modelreg.services.serve_bridge.transitions import EVENT_FOR_APP_STATUS
from modelreg.shared.contracts import DeploymentCommand
from modelreg.shared.settings import Settings

DOC = (Path(__file__).parents[2] / "docs" / "bridge.md").read_text()


def test_every_serve_status_is_documented_with_its_event() -> None:
    rows = [line for line in DOC.splitlines() if line.startswith("| `") and "deployment." in line]
    for status, event_type in EVENT_FOR_APP_STATUS.items():
        row = next(r for r in rows if re.search(rf"`{status}`", r.split("|")[1]))
        assert f"`{event_type}`" in row.split("|")[2], row
    assert any(r.startswith("| gone") for r in DOC.splitlines() if "`deployment.deleted`" in r)


def test_every_command_field_is_documented() -> None:
    for field in DeploymentCommand.__struct_fields__:
        assert f"`{field}`" in DOC, field


def test_every_bridge_setting_is_documented() -> None:
    names = [n for n in Settings.__struct_fields__ if n.startswith(("bridge_", "serve_", "ray_"))]
    for name in names:
        assert f"MODELREG_{name.upper()}" in DOC, name
