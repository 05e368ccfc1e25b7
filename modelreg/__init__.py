"""The registry's one import root: `modelreg.shared` and `modelreg.services`.

The code lives in the top-level folders `shared/` and `services/`; `modelreg/shared` and `modelreg/services` are
symlinks to them, so the wheel installs a single unique package and nothing generic like `services`.
"""
