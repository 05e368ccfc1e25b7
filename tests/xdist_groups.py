"""How `pytest -n N --dist loadgroup` (the Makefile's) spreads the suite over xdist workers.

A file stays on one worker (its module fixtures start once), as with `--dist loadfile`; the files that share a
package-scoped Ray cluster form one group on one worker, so each cluster starts once per run. xdist 3.8's own
loadgroup marks a group by rewriting the tests' node ids, which pytest 9.2 no longer lets it do (it then
spreads tests one by one: pytest-xdist issue 1386), so the groups are set here, by file, where the
controller decides. The groups start first: they are the longest units (clusters to start, models to deploy),
and a long unit started last makes the whole run wait for it; after them the directories of slow files.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# The Ray fixtures (tests/e2e/conftest.py) a group shares, and the files whose tests use them
# (tests/conftest.py checks that no other file does: it would start its own cluster wherever it lands).
SHARED_FIXTURES = {"cluster_pair": "ray-pair", "ray_cluster": "ray"}
FILE_GROUPS = {
    "tests/e2e/test_cluster_moves_e2e.py": "ray-pair",
    "tests/e2e/test_clusters_e2e.py": "ray-pair",
    "tests/e2e/test_bridge_e2e.py": "ray",
    "tests/e2e/test_testing_plugin_bridge.py": "ray",
}


# Units start longest first, roughly: a file of a few slow tests (real processes killed and awaited) takes
# longer than one of many fast ones, which xdist would start first (it orders by the number of tests).
START_ORDER = (
    "ray",
    "ray-pair",
    "tests/faults/",
    "tests/fuzz/",
    "tests/examples/",
    "tests/browser/",
    "tests/e2e/",
    "tests/integration/",
)


def start_rank(unit: str) -> int:
    """Where a unit starts: by the first START_ORDER entry it begins with; the rest after them."""
    return next(
        (rank for rank, prefix in enumerate(START_ORDER) if unit.startswith(prefix)), len(START_ORDER)
    )


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its file's group, else its file."""
    path = nodeid.split("::", 1)[0]
    return FILE_GROUPS.get(path, path)


def group_mismatch(path: str, fixturenames: Any) -> str | None:
    """Why a test (in `path`, using `fixturenames`) would start a shared cluster outside its group, if so."""
    for fixture, group in SHARED_FIXTURES.items():
        if fixture in fixturenames and FILE_GROUPS.get(path) != group:
            return (
                f"{path} uses the shared fixture {fixture}: add it to FILE_GROUPS as {group!r} ({__file__})"
            )
    return None


class GroupScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with `unit_of` as the scope and the groups' units handed out first."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._ordered = False

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:  # the work queue is complete (in xdist's order) by the first assignment
            self._ordered = True
            for unit in sorted(self.workqueue, key=start_rank):  # stable: xdist's order within a rank
                self.workqueue.move_to_end(unit)
        super()._assign_work_unit(node)
