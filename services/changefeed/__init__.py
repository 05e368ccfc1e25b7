"""The change feed inside a process: one change stream, fanned out to in-process subscribers."""
