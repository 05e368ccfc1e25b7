"""Live watch of models over server-sent events (docs/watch.md)."""
