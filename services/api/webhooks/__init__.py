"""Webhook endpoints of a namespace and their delivery log (docs/webhooks.md)."""
