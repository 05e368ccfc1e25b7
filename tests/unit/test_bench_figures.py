"""A benchmark cell yields a figure only when it measured the real thing: no errors, nothing unseen."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from bench.figures import (
    NOT_A_RATIO,
    error_summary,
    figure,
    joined_failures,
    load_cell_failure,
    ratio,
    unseen_failure,
)
from bench.load import LoadResult, closed_loop
from bench.tables import Table


def load_result(requests: int, errors: Counter[str] | None = None) -> LoadResult:
    return LoadResult(
        concurrency=1, requests=requests, errors=errors or Counter(), seconds=2.0, p50_ms=1.5, p99_ms=4.0
    )


def test_a_clean_cell_yields_its_figures_and_ratios() -> None:
    api, limit = load_result(1000), load_result(4000)
    assert api.failure is None
    assert api.rps.text(",.0f") == "500"
    assert ratio(api.rps, limit.rps) == "0.25"
    assert ratio(api.p99, limit.p99) == "1.00"


def test_a_cell_with_refusals_renders_as_failed_and_every_ratio_using_it_as_na() -> None:
    refused = load_result(11_240, Counter({"HTTP 401": 11_240}))
    limit = load_result(4000)
    assert refused.failure == "11,240 errors: HTTP 401 ×11,240"
    assert refused.rps.text(",.0f") == "FAILED (11,240 errors: HTTP 401 ×11,240)"
    assert refused.p99.failed
    assert ratio(refused.rps, limit.rps) == NOT_A_RATIO
    assert ratio(limit.rps, refused.rps) == NOT_A_RATIO
    assert ratio(refused.p99, limit.p99) == NOT_A_RATIO


def test_one_error_among_many_successes_still_fails_the_cell() -> None:
    cell = load_result(10_000, Counter({"HTTP 503": 1}))
    assert cell.rps.text(",.0f") == "FAILED (1 error: HTTP 503 ×1)"


def test_a_cell_without_a_single_success_fails_even_without_errors() -> None:
    assert load_cell_failure(0, Counter()) == "no successful request"
    assert load_result(0).rps.failed
    assert load_cell_failure(1, Counter({"HTTP 401": 0})) is None


def test_error_summary_names_the_most_frequent_reasons() -> None:
    errors = Counter({"HTTP 401": 5, "HTTP 500": 3, "ClientOSError": 2, "HTTP 404": 1})
    assert error_summary(errors, shown=2) == "11 errors: HTTP 401 ×5, HTTP 500 ×3, ..."
    assert error_summary(Counter()) is None


def test_a_value_that_is_not_a_number_is_a_failure_not_a_figure() -> None:
    assert figure(math.nan).text(".1f") == "FAILED (nothing measured)"
    assert figure(12.345).text(".1f") == "12.3"
    assert ratio(figure(1.0), figure(0.0)) == NOT_A_RATIO


def test_missing_observations_fail_the_figures_computed_from_the_others() -> None:
    assert unseen_failure(3000, 0, "events") == "3,000 of 3,000 events not seen"
    assert unseen_failure(3000, 2999, "events") == "1 of 3,000 events not seen"
    assert unseen_failure(3000, 3000, "events") is None
    latency = figure(136.2, joined_failures(unseen_failure(3000, 2999, "events"), None))
    assert latency.text(".1f") == "FAILED (1 of 3,000 events not seen)"
    assert joined_failures(None, None) is None


async def test_closed_loop_counts_wrong_answers_and_raised_errors_by_reason() -> None:
    # Client 0 is always refused, client 1's connection always breaks, client 2 always succeeds.
    async def request(i: int) -> str | None:
        await asyncio.sleep(0)
        if i % 3 == 0:
            return "HTTP 401"
        if i % 3 == 1:
            raise ConnectionResetError
        return None

    result = await closed_loop(request, concurrency=3, duration_s=0.2, warmup_s=0.0)
    assert set(result.errors) == {"HTTP 401", "ConnectionResetError"}
    assert result.rps.failed and result.p50.failed


def test_a_table_lists_its_failed_cells() -> None:
    table = Table("Read", ["clients", "req/s"])
    table.add(1, load_result(5, Counter({"HTTP 401": 5})).rps.text(",.0f"))
    table.fail("API, 1 clients", "5 errors: HTTP 401 ×5")
    assert "- **FAILED** API, 1 clients: 5 errors: HTTP 401 ×5" in table.markdown()
    assert "FAILED (5 errors: HTTP 401 ×5)" in table.text()
