"""The one rule for namespace and model ids, shared by routes, the CLI, API keys, events and commands.

Ids travel in URL paths and headers, Kafka keys ("{namespace_id}/{model_id}"), storage paths and Ray Serve
names, so they are limited to URL-unreserved ASCII: letters, digits, "_", "-", "." and "~". The first
character is a letter, a digit or "_": names starting with "." are reserved (the archive spool is
`.incoming`) and a leading "-" would read as an option on the command line.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

MAX_ID_LENGTH = 256
# "(?![\s\S])" ends the text in Python and JSON Schema regexes alike ("$" lets a trailing newline through).
ID_PATTERN = rf"^[A-Za-z0-9_][A-Za-z0-9_.~-]{{0,{MAX_ID_LENGTH - 1}}}(?![\s\S])"
ID_RULE = f"1-{MAX_ID_LENGTH} characters from A-Z a-z 0-9 _ - . ~, starting with a letter, a digit or _"
ResourceId = Annotated[
    str, msgspec.Meta(pattern=ID_PATTERN, min_length=1, max_length=MAX_ID_LENGTH, description=ID_RULE)
]

# Where shared (org-level) models' archives are stored: a dot-prefixed name no namespace can take.
ORG_STORAGE_NAMESPACE = ".org"
# Static path segments under /v1/namespaces/{ns}/models/ that take precedence over a model id: a model with
# one of these ids would be unreachable on some routes, so they are refused when registering.
RESERVED_MODEL_IDS = frozenset({"available", "org", "uploads"})

_ID = re.compile(ID_PATTERN)


def is_valid_id(value: str) -> bool:
    return _ID.match(value) is not None


class InvalidIdError(ValueError):
    """An id that breaks the rule; the message names the field and the rule."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"invalid {field} {value[:80]!r}: {ID_RULE}")
        self.field = field


def check_id(field: str, value: str) -> str:
    if not is_valid_id(value):
        raise InvalidIdError(field, value)
    return value


class ReservedModelIdError(ValueError):
    def __init__(self, value: str) -> None:
        super().__init__(
            f"model_id {value!r} is reserved (a route name): {', '.join(sorted(RESERVED_MODEL_IDS))}"
        )


def check_model_id(value: str) -> str:
    check_id("model_id", value)
    if value in RESERVED_MODEL_IDS:
        raise ReservedModelIdError(value)
    return value
