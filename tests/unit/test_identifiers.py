"""The one id rule for namespaces and models (routes, CLI, keys, events, commands)."""

from __future__ import annotations

import msgspec
import pytest

from modelreg.shared.contracts import DeploymentCommand
from modelreg.shared.identifiers import InvalidIdError, check_id, check_model_id, is_valid_id

CASES = [
    ("ns_a", True),
    ("team.models-1", True),
    ("model_0123abcd", True),
    ("v1~rc", True),
    ("_private", True),
    ("a" * 256, True),
    ("a" * 257, False),
    ("", False),
    (".", False),
    ("..", False),
    (".incoming", False),  # dot-prefixed names are reserved
    ("-rf", False),  # would read as a command-line option
    ("a/b", False),
    ("a\\b", False),
    ("a b", False),
    ("a\nb", False),
    ("abc\n", False),  # "$" alone would accept one trailing newline
    ("a%2Fb", False),
    ("\u202eteam", False),  # right-to-left override
    ("\xff", False),  # what %ff decodes to
    ("équipe-日本", False),
]


@pytest.mark.parametrize(("value", "valid"), CASES)
def test_ids_are_url_unreserved_ascii_not_starting_with_a_dot(value: str, valid: bool) -> None:
    assert is_valid_id(value) is valid


@pytest.mark.parametrize(("value", "valid"), CASES)
def test_commands_apply_the_same_rule(value: str, valid: bool) -> None:
    raw = {
        "command_id": "0b6f2f6e-3c1e-4f2a-9c55-0d7b8e0e6b11",
        "command_type": "deploy",
        "namespace_id": value,
        "model_id": "m1",
        "requested_at": "2026-01-01T00:00:00Z",
    }
    if valid:
        assert msgspec.convert(raw, DeploymentCommand).namespace_id == value
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(raw, DeploymentCommand)


def test_check_id_names_the_field_and_the_rule() -> None:
    with pytest.raises(InvalidIdError, match="invalid namespace_id 'a/b': 1-256 characters"):
        check_id("namespace_id", "a/b")
    assert check_id("model_id", "m1") == "m1"


def test_route_names_are_reserved_model_ids() -> None:
    with pytest.raises(ValueError, match="reserved"):
        check_model_id("uploads")
    assert check_model_id("uploads_v2") == "uploads_v2"
    with pytest.raises(InvalidIdError):
        check_model_id("a/b")
