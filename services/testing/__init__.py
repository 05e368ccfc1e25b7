"""A testing kit for the services around the registry: the `modelreg` pytest plugin (`plugin.py`), the
registry started as real processes (`stack.py`), a testcontainers module (`container.py`), and model
documents to insert without the API (`documents.py`).

Nothing here is imported by the registry's own processes; importing this package starts nothing.
"""
