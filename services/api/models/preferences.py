"""The `Prefer` request header (RFC 7240): which wait, in seconds, the client asks for. Pure functions."""

from __future__ import annotations

# delta-seconds beyond this are read as this (and capped by the setting anyway); int() of very long digit
# strings is refused by Python.
_MAX_DIGITS = 9


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def preferred_wait(prefer: str | None) -> int | None:
    """Seconds of `wait=N` in a Prefer header value (several headers joined by commas), else None.

    Preference names are case-insensitive; the value is delta-seconds, bare or quoted; only the first
    `wait` counts (RFC 7240 section 2); a malformed one is ignored, as a server ignores what it cannot
    honour.
    """
    if not prefer:
        return None
    for preference in _split_outside_quotes(prefer, ","):
        head = _split_outside_quotes(preference, ";")[0]
        name, has_value, value = head.partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not has_value or not value.isascii() or not value.isdigit():
            return None
        return int(value) if len(value) <= _MAX_DIGITS else 10**_MAX_DIGITS
    return None
