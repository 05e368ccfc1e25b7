"""The Mixpeek SDK, imported on first use.

Importing `mixpeek` builds its ~1,000 pydantic models (4–6 s of CPU). Every xdist worker imports every test
module to collect it, so a module-level import would cost that on each worker, whichever files it runs;
`mixpeek` here imports the SDK when a test first reads one of its public names. Private and dunder names
are refused without importing: pytest probes every global of a test module for fixture markers.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazySDK:
    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self._module), name)


mixpeek: Any = LazySDK("mixpeek")
