"""API keys, pure: their format, how they are hashed for storage, and how a presented key is checked.

A key is `mrk_<prefix>_<secret>`: the prefix (12 hex characters) is stored in clear to find the key's record,
the secret is 256 random bits. Only an HMAC-SHA256 of the whole key is stored, so a database dump does not
reveal usable keys; the HMAC secret (MODELREG_API_KEY_PEPPER) adds protection if the dump leaks alone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import msgspec

KEY_SCHEME = "mrk"
PREFIX_HEX_CHARS = 12
HASH_ALGORITHM = "hmac-sha256"
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
KEY_PATTERN = re.compile(rf"^{KEY_SCHEME}_([0-9a-f]{{{PREFIX_HEX_CHARS}}})_([A-Za-z0-9_-]{{43}})$")


class GeneratedKey(msgspec.Struct, frozen=True):
    key: str
    prefix: str
    key_hash: str


def hash_key(key: str, pepper: str) -> str:
    digest = hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_ALGORITHM}:{digest}"


def generate_key(pepper: str) -> GeneratedKey:
    prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return GeneratedKey(key=key, prefix=prefix, key_hash=hash_key(key, pepper))


def key_prefix(presented: str) -> str | None:
    """The lookup prefix of a well-formed key, or None when the string cannot be one of our keys."""
    match = KEY_PATTERN.match(presented)
    return match.group(1) if match else None


# Compared against when no record matches, so a miss costs the same hashing and comparison as a hit.
_UNKNOWN_KEY_HASH = f"{HASH_ALGORITHM}:{'0' * 64}"


def key_matches(presented: str, stored_hash: str | None, pepper: str) -> bool:
    """Constant-time check of a presented key against the stored hash (None: no record was found)."""
    expected = stored_hash if stored_hash is not None else _UNKNOWN_KEY_HASH
    matches = hmac.compare_digest(hash_key(presented, pepper).encode(), expected.encode())
    return matches and stored_hash is not None


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's prefix and what it may reach."""

    key_prefix: str
    namespaces: frozenset[str]
    admin: bool = False

    def can_access(self, namespace_id: str) -> bool:
        return self.admin or namespace_id in self.namespaces
