"""The performance goals, each with the figure of this run that measures it and whether it is met.

Pure: the benchmarks hand their figures in, this says ok, MISS or n/a (the figure failed or was not run).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.figures import Figure
from bench.tables import Table


@dataclass(frozen=True)
class Goal:
    name: str
    target: float
    # True: the figure must be at least the target; False: at most.
    at_least: bool
    spec: str = ".2f"

    def verdict(self, measured: Figure | None) -> str:
        if measured is None or measured.failed:
            return "n/a"
        met = measured.value >= self.target if self.at_least else measured.value <= self.target
        return "ok" if met else "MISS"

    def target_text(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {format(self.target, self.spec)}"


AUTH_RATIO = Goal("GET details / raw find_one req/s, most clients (auth without a database trip)", 0.8, True)
CACHE_RATIO = Goal("GET details / raw find_one req/s, most clients (details from memory)", 1.5, True)
CEILING_RATIO = Goal("GET details / API ceiling (GET /v1/whoami) req/s, most clients", 0.7, True)
STALENESS_P99 = Goal("staleness p99 ms (another process's write → visible in GET)", 50, False, ".1f")
EVENT_P99 = Goal("event → visible in GET p99 ms at 100 events/s", 100, False, ".1f")
LIST_P99 = Goal("filtered list page p99 ms at the largest size", 50, False, ".1f")
GET_FLAT = Goal("GET details req/s across sizes, warm working set, lowest / highest (flat)", 0.8, True)
WORKER_SCALING = Goal("worker events/s, 2 workers / 1 (distinct partitions), lowest across sizes", 1.6, True)
PREDICT_OVERHEAD = Goal(
    "inference route: p50 ms added over calling the endpoint directly (worse of by id / by alias)", 2, False
)
SSE_P99 = Goal("event → SSE change received p99 ms at 100 events/s, 100 watchers", 100, False, ".1f")
ALL_GOALS = (
    AUTH_RATIO,
    CACHE_RATIO,
    CEILING_RATIO,
    STALENESS_P99,
    EVENT_P99,
    LIST_P99,
    GET_FLAT,
    WORKER_SCALING,
    PREDICT_OVERHEAD,
    SSE_P99,
)


def goals_table(measured: dict[Goal, Figure | None]) -> Table:
    """Every goal in order; a goal without a figure in `measured` was not run (n/a)."""
    table = Table("Goals (every figure from this run)", ["goal", "measured", "target", "verdict"])
    for goal in ALL_GOALS:
        figure = measured.get(goal)
        text = "not run" if figure is None else figure.text(goal.spec)
        table.add(goal.name, text, goal.target_text(), goal.verdict(figure))
    misses = [goal.name for goal in ALL_GOALS if goal.verdict(measured.get(goal)) == "MISS"]
    table.notes.append(f"{len(misses)} goal(s) missed" if misses else "every measured goal met")
    return table
