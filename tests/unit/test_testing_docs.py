"""docs/testing.md shows the example consumer test exactly as it runs in this suite."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "testing.md").read_text()
EXAMPLE = ROOT / "tests" / "examples" / "test_consumer_service.py"


def python_blocks(text: str) -> list[str]:
    return [block.split("\n", 1)[1] for block in text.split("```")[1::2] if block.startswith("python\n")]


def test_the_doc_shows_the_example_test_verbatim() -> None:
    assert EXAMPLE.read_text() in python_blocks(DOC)


def test_every_fixture_and_helper_the_doc_names_exists(tmp_path: Path) -> None:
    from modelreg.services.testing import plugin
    from modelreg.services.testing.stack import RegistryStack

    assert callable(plugin.modelreg_stack) and callable(plugin.modelreg_namespace)
    stack = RegistryStack(tmp_path)  # not started
    for name in (
        "api_url",
        "admin_key",
        "namespace_key",
        "new_namespace",
        "client",
        "kafka_bootstrap_servers",
        "kafka_idempotent",
        "topics",
        "mongodb_url",
        "database",
        "register_model",
        "get_model",
        "publish_event",
        "producer",
        "wait_for_status",
    ):
        assert hasattr(stack, name), name
        assert f"`{name}" in DOC, name
