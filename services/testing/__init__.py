"""A testing kit for the services around the registry: the `modelreg` pytest plugin (`plugin.py`), the
registry started as real processes (`stack.py`), and a testcontainers module (`container.py`).

Nothing here is imported by the registry's own processes; importing this package starts nothing.
"""
