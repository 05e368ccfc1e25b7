"""The suite's xdist work units (tests/xdist_groups.py): files, and the files sharing a Ray cluster."""

from __future__ import annotations

from pathlib import Path

from tests.xdist_groups import FILE_GROUPS, SHARED_FIXTURES, group_mismatch, start_rank, unit_of

ROOT = Path(__file__).resolve().parents[2]


def test_a_test_belongs_to_its_files_group_or_else_to_its_file() -> None:
    assert unit_of("tests/e2e/test_clusters_e2e.py::test_x") == "ray-pair"
    assert unit_of("tests/e2e/test_cluster_moves_e2e.py::test_y[a::b]") == "ray-pair"
    assert unit_of("tests/e2e/test_bridge_e2e.py::test_z") == "ray"
    assert unit_of("tests/unit/test_retry.py::test_a[x]") == "tests/unit/test_retry.py"


def test_a_shared_cluster_used_outside_its_group_is_named_with_the_fix() -> None:
    assert group_mismatch("tests/e2e/test_clusters_e2e.py", ["infra", "cluster_pair"]) is None
    assert group_mismatch("tests/unit/test_retry.py", ["infra", "tmp_path"]) is None
    problem = group_mismatch("tests/e2e/test_new_e2e.py", ["cluster_pair"])
    assert problem is not None and "cluster_pair" in problem and "'ray-pair'" in problem
    assert group_mismatch("tests/e2e/test_clusters_e2e.py", ["ray_cluster"]) is not None


def test_every_grouped_file_exists_and_every_group_has_its_fixture() -> None:
    assert all((ROOT / path).is_file() for path in FILE_GROUPS)
    assert set(FILE_GROUPS.values()) == set(SHARED_FIXTURES.values())


def test_the_groups_start_first_then_the_slow_directories_then_the_rest() -> None:
    units = [
        "tests/unit/test_a.py",
        "tests/integration/test_b.py",
        "tests/faults/test_c.py",
        "ray-pair",
        "ray",
    ]
    assert sorted(units, key=start_rank) == [
        "ray-pair",
        "ray",
        "tests/faults/test_c.py",
        "tests/integration/test_b.py",
        "tests/unit/test_a.py",
    ]
