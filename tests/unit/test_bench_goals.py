"""The goals table of `make bench`: ok, MISS, n/a."""

from __future__ import annotations

from collections import Counter

from bench.figures import figure
from bench.goals import (
    ALL_GOALS,
    AUTH_RATIO,
    EVENT_P99,
    LIST_P99,
    PREDICT_OVERHEAD,
    SSE_P99,
    goals_table,
)
from bench.load import LoadResult
from bench.predict import worst_added_p50


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


def test_the_inference_overhead_and_sse_goals_are_at_most_goals() -> None:
    assert PREDICT_OVERHEAD.verdict(figure(1.9)) == "ok"
    assert PREDICT_OVERHEAD.verdict(figure(2.1)) == "MISS"
    assert SSE_P99.verdict(figure(99.0)) == "ok"
    assert SSE_P99.verdict(figure(101.0)) == "MISS"
    assert SSE_P99.verdict(figure(0.0, "3 of 2,000 events not seen")) == "n/a"
    names = [row[0] for row in goals_table({}).rows]
    assert names[-2:] == [PREDICT_OVERHEAD.name, SSE_P99.name]


def result(p50_ms: float, errors: int = 0) -> LoadResult:
    return LoadResult(
        concurrency=1,
        requests=100,
        errors=Counter({"HTTP 502": errors}),
        seconds=1.0,
        p50_ms=p50_ms,
        p99_ms=p50_ms * 2,
    )


def test_the_overhead_is_the_worse_route_over_the_direct_call() -> None:
    results = {
        "endpoint directly": result(1.0),
        "API floor: GET …/models/{id}": result(9.0),
        "API: …/models/{id}/predict": result(2.5),
        "API: …/aliases/{alias}/predict": result(3.25),
    }

    assert worst_added_p50(results).value == 2.25


def test_the_overhead_fails_when_any_route_or_the_direct_call_failed() -> None:
    results = {
        "endpoint directly": result(1.0),
        "API: …/models/{id}/predict": result(2.5, errors=3),
        "API: …/aliases/{alias}/predict": result(3.0),
    }

    overhead = worst_added_p50(results)

    assert overhead.failed and "HTTP 502" in (overhead.failure or "")
    assert PREDICT_OVERHEAD.verdict(overhead) == "n/a"
