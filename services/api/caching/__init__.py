"""The API process's in-memory caches (docs/performance.md): bounded, TTL-limited, invalidated by this
process's writes and, when the change feed runs, by every committed change."""
