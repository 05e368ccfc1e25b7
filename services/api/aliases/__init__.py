"""Aliases: stable names (`production`, `champion`) for one version of a model name; one-call rollback."""
