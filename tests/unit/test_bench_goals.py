"""The goals table of `make bench`: ok, MISS, n/a."""

from __future__ import annotations

from bench.figures import figure
from bench.goals import ALL_GOALS, AUTH_RATIO, EVENT_P99, LIST_P99, goals_table


def test_each_goal_says_ok_miss_or_na() -> None:
    assert AUTH_RATIO.verdict(figure(0.85)) == "ok"
    assert AUTH_RATIO.verdict(figure(0.79)) == "MISS"
    assert EVENT_P99.verdict(figure(100.0)) == "ok"
    assert EVENT_P99.verdict(figure(100.1)) == "MISS"
    assert LIST_P99.verdict(figure(0.0, "3 errors")) == "n/a"
    assert LIST_P99.verdict(None) == "n/a"


def test_the_table_lists_every_goal_and_counts_misses() -> None:
    table = goals_table({AUTH_RATIO: figure(0.5), EVENT_P99: figure(42.0)})

    assert [row[0] for row in table.rows] == [goal.name for goal in ALL_GOALS]
    assert table.rows[0][1:] == ["0.50", "≥ 0.80", "MISS"]
    assert table.rows[4][1:] == ["42.0", "≤ 100.0", "ok"]
    assert table.rows[1][1] == "not run" and table.rows[1][3] == "n/a"
    assert table.notes[0] == "1 goal(s) missed"
