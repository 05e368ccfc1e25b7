"""PURE: a model's tags (string key → string value): the key rule, the bounds, and what a change does.

Keys are path segments in MongoDB (`tags.<key>`) and in the filter language, so they never hold `.`, `$`
or spaces: 1–64 characters from letters, digits, `_`, `-` and `:`, starting with a letter, a digit or `_`.
Values are 0–256 characters of visible text (no control or bidirectional characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

TAG_KEY_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_:\-]{0,63}"
MAX_TAGS = 50
MAX_TAG_VALUE_LENGTH = 256
_KEY = re.compile(TAG_KEY_PATTERN)
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class TagError(ValueError):
    """Tags the registry refuses; `key` names the offending tag when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


def check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise TagError(
            f"invalid tag key {key!r}: 1-64 characters from letters, digits, '_', '-' and ':', "
            "starting with a letter, a digit or '_'",
            key if isinstance(key, str) else None,
        )
    return key


def check_value(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise TagError(f"the value of tag {key!r} must be a string", key)
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise TagError(f"the value of tag {key!r} is longer than {MAX_TAG_VALUE_LENGTH} characters", key)
    if _BAD_VALUE_CHAR.search(value):
        raise TagError(f"the value of tag {key!r} holds control or bidirectional characters", key)
    return value


def check_tags(tags: object) -> dict[str, str]:
    """Tags given at upload: a JSON object of string → string within the bounds."""
    if not isinstance(tags, Mapping):
        raise TagError('tags must be a JSON object of strings, e.g. {"team": "search"}')
    if len(tags) > MAX_TAGS:
        raise TagError(f"more than {MAX_TAGS} tags")
    return {check_key(key): check_value(key, value) for key, value in tags.items()}


def check_changes(changes: object) -> tuple[dict[str, str], list[str]]:
    """A tag change (`{"k": "v", "gone": null}`): the tags to set and the keys to remove."""
    if not isinstance(changes, Mapping) or not changes:
        raise TagError('tags must be a non-empty JSON object, e.g. {"stage": "prod", "old": null}')
    if len(changes) > MAX_TAGS:
        raise TagError(f"more than {MAX_TAGS} tag changes")
    to_set: dict[str, str] = {}
    to_remove: list[str] = []
    for key, value in changes.items():
        check_key(key)
        if value is None:
            to_remove.append(key)
        else:
            to_set[key] = check_value(key, value)
    return to_set, to_remove


def too_many_after(current: Mapping[str, str], to_set: Mapping[str, str], to_remove: list[str]) -> bool:
    """Whether applying the change to `current` leaves more than MAX_TAGS tags."""
    after = (set(current) | set(to_set)) - set(to_remove)
    return len(after) > MAX_TAGS
