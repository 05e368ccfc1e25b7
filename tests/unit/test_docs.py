"""The documentation states the contract the code implements."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from modelreg.shared.contracts import DeploymentCommand, DeploymentEvent, EventType
from modelreg.shared.deployment_rules import STATUS_AFTER

DOCS = Path(__file__).parents[2] / "docs"


def test_events_doc_embeds_the_current_json_schema() -> None:
    text = (DOCS / "events.md").read_text()
    embedded = re.search(r"## JSON Schema.*?```json\n(.*?)```", text, re.S).group(1)
    generated = msgspec.json.schema_components([DeploymentEvent, DeploymentCommand])[1]
    assert json.loads(embedded) == json.loads(msgspec.json.encode(generated))


def test_events_doc_lists_every_event_type_with_its_status() -> None:
    text = (DOCS / "events.md").read_text()
    for event_type in EventType:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{event_type}` |"))
        assert f"`{STATUS_AFTER[event_type]}`" in row


def test_every_setting_is_documented() -> None:
    from modelreg.shared.settings import Settings

    text = (DOCS.parent / "README.md").read_text() + (DOCS / "bridge.md").read_text()
    # docs/bridge.md names the per-format base images once: MODELREG_BASE_IMAGE_ONNX, `…_SAFETENSORS`, …
    text += " ".join(f"MODELREG_BASE_IMAGE_{fmt}" for fmt in re.findall(r"`…_([A-Z]+)`", text))
    missing = [name for name in Settings.__struct_fields__ if f"MODELREG_{name.upper()}" not in text]
    assert missing == []
