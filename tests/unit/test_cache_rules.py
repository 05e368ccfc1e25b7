"""Which unpacked models the bridge evicts: never one in use, least recently used first, down to the bound."""

from __future__ import annotations

from modelreg.services.serve_bridge.cache_rules import CachedModel, in_use, models_to_evict

A, B, C = ("a" * 64, "b" * 64, "c" * 64)


def cached(*models: tuple[str, int, float]) -> list[CachedModel]:
    return [CachedModel(model_hash, size, last_used) for model_hash, size, last_used in models]


def test_nothing_is_evicted_while_the_cache_fits() -> None:
    assert models_to_evict(cached((A, 10, 1), (B, 10, 2)), set(), max_bytes=20) == []


def test_least_recently_used_unused_models_go_first_until_the_cache_fits() -> None:
    models = cached((A, 10, 3), (B, 10, 1), (C, 10, 2))

    assert models_to_evict(models, set(), max_bytes=20) == [B]
    assert models_to_evict(models, set(), max_bytes=10) == [B, C]


def test_models_in_use_are_never_evicted_even_above_the_bound() -> None:
    models = cached((A, 100, 1), (B, 10, 2), (C, 10, 3))

    # A is oldest and alone exceeds the bound, but an application runs it (by its 16-hex prefix).
    assert models_to_evict(models, {A[:16], C}, max_bytes=50) == [B]
    assert models_to_evict(models, {A[:16], B[:16], C[:16]}, max_bytes=0) == []


def test_a_zero_bound_evicts_every_unused_model() -> None:
    assert models_to_evict(cached((A, 0, 1), (B, 5, 2)), {B}, max_bytes=0) == [A]


def test_ties_in_last_use_are_broken_by_hash_for_a_stable_choice() -> None:
    assert models_to_evict(cached((B, 10, 1), (A, 10, 1)), set(), max_bytes=10) == [A]


def test_in_use_matches_full_hashes_and_deployment_prefixes() -> None:
    assert in_use(A, {A}) and in_use(A, {A[:16]}) and not in_use(A, {B[:16]})
