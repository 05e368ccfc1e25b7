"""API key administration: creating, listing and revoking namespace-scoped keys (used by the CLI)."""
