"""The audit trail: record a write ahead of it, settle it after (used by the API and the CLI's writes)."""
