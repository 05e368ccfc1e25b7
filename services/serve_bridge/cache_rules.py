"""Which unpacked models the bridge's cache evicts. Pure functions.

A model some application runs (or a deploy in hand) is never evicted: its replica may be reading the files.
The others are kept, most recently used first, while the whole cache fits the byte bound.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedModel:
    model_hash: str  # full sha256, the cache directory's name
    size_bytes: int
    last_used: float  # seconds since the epoch


def in_use(model_hash: str, used: Collection[str]) -> bool:
    """Whether `used` (full hashes, or the 16-hex prefixes deployment names carry) holds the model."""
    return any(model_hash.startswith(prefix) for prefix in used)


def models_to_evict(cached: Iterable[CachedModel], used: Collection[str], max_bytes: int) -> list[str]:
    """Hashes to remove, least recently used first, until the cache fits `max_bytes` (0: every unused one).

    Models in use count towards the total but are never chosen, so the cache may stay above the bound.
    """
    models = list(cached)
    total = sum(model.size_bytes for model in models)
    unused = sorted(
        (model for model in models if not in_use(model.model_hash, used)),
        key=lambda model: (model.last_used, model.model_hash),
    )
    evicted: list[str] = []
    for model in unused:
        if total <= max_bytes and max_bytes > 0:
            break
        evicted.append(model.model_hash)
        total -= model.size_bytes
    return evicted
