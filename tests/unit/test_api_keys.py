"""API key format, hashing and checks (pure)."""

from __future__ import annotations

import pytest

from modelreg.shared.api_keys import (
    KEY_PATTERN,
    Principal,
    generate_key,
    hash_key,
    key_matches,
    key_prefix,
)


def test_generated_keys_are_unique_well_formed_and_hashed_not_stored() -> None:
    keys = [generate_key("pepper") for _ in range(200)]

    assert len({k.key for k in keys}) == 200 and len({k.prefix for k in keys}) == 200
    for generated in keys:
        assert KEY_PATTERN.fullmatch(generated.key)
        assert key_prefix(generated.key) == generated.prefix
        assert generated.key_hash == hash_key(generated.key, "pepper")
        assert generated.key not in generated.key_hash and generated.key_hash.startswith("hmac-sha256:")


def test_a_key_matches_only_its_own_hash_under_the_same_pepper() -> None:
    generated = generate_key("pepper")
    other = generate_key("pepper")

    assert key_matches(generated.key, generated.key_hash, "pepper")
    assert not key_matches(other.key, generated.key_hash, "pepper")
    assert not key_matches(generated.key, generated.key_hash, "another pepper")
    assert not key_matches(generated.key, None, "pepper")  # no record: never a match
    tampered = generated.key[:-1] + ("x" if generated.key[-1] != "x" else "y")
    assert not key_matches(tampered, generated.key_hash, "pepper")


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "mrk_",
        "Bearer mrk_0123456789ab_" + "a" * 43,
        "mrk_0123456789AB_" + "a" * 43,  # prefix is lower-case hex
        "mrk_0123456789ab_" + "a" * 42,
        "mrk_0123456789ab_" + "a" * 44,
        "mrk_0123456789ab_" + "a" * 42 + "=",
        "xyz_0123456789ab_" + "a" * 43,
    ],
)
def test_strings_that_cannot_be_keys_have_no_prefix(presented: str) -> None:
    assert key_prefix(presented) is None


def test_principals_reach_their_namespaces_and_admins_reach_all() -> None:
    scoped = Principal(key_prefix="p", namespaces=frozenset({"a", "b"}))
    admin = Principal(key_prefix="q", namespaces=frozenset(), admin=True)

    assert scoped.can_access("a") and scoped.can_access("b") and not scoped.can_access("c")
    assert admin.can_access("anything")
