"""PURE: when a measurement may be printed as a figure, and when it must be printed as a failure.

A benchmark that counts refusals (401s, errors, events never seen) measures how fast the system says no.
Such a cell yields no number and no ratio: it renders as "FAILED (...)", every ratio using it as "n/a",
and the run exits non-zero.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

NOT_A_RATIO = "n/a"
NO_FIGURE = "-"


@dataclass(frozen=True)
class Figure:
    """A measured value, or why there is none (`failure` set; `value` is then meaningless)."""

    value: float
    failure: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def text(self, spec: str) -> str:
        return f"FAILED ({self.failure})" if self.failure is not None else format(self.value, spec)


def figure(value: float, failure: str | None = None) -> Figure:
    """The cell's figure unless it failed; a value that is not a finite number is a failure too."""
    if failure is None and not math.isfinite(value):
        failure = "nothing measured"
    return Figure(math.nan if failure is not None else value, failure)


def error_summary(errors: Counter[str], shown: int = 3) -> str | None:
    """'11,240 errors: HTTP 401 ×11,240': the count and the most frequent reasons; None for no errors."""
    errors = +errors  # drops zero counts
    total = sum(errors.values())
    if not total:
        return None
    reasons = ", ".join(f"{reason} ×{count:,}" for reason, count in errors.most_common(shown))
    more = ", ..." if len(errors) > shown else ""
    return f"{total:,} error{'' if total == 1 else 's'}: {reasons}{more}"


def load_cell_failure(successes: int, errors: Counter[str]) -> str | None:
    """Why a load cell yields no figure (any error, or not one success), or None when it does."""
    return error_summary(errors) or (None if successes > 0 else "no successful request")


def unseen_failure(expected: int, seen: int, what: str) -> str | None:
    """Observations that never arrived make every figure computed from the others a failure."""
    if seen < expected:
        return f"{expected - seen:,} of {expected:,} {what} not seen"
    return None


def joined_failures(*reasons: str | None) -> str | None:
    """Every reason a cell failed, or None when none did."""
    return "; ".join(reason for reason in reasons if reason) or None


def ratio(numerator: Figure, denominator: Figure, spec: str = ".2f") -> str:
    """numerator/denominator as text; "n/a" as soon as either side failed or the quotient is undefined."""
    if numerator.failed or denominator.failed or denominator.value == 0:
        return NOT_A_RATIO
    return format(numerator.value / denominator.value, spec)


def ratio_figure(numerator: Figure, denominator: Figure) -> Figure:
    """numerator/denominator as a figure of its own (failed when either side failed, or undefined)."""
    failure = joined_failures(numerator.failure, denominator.failure)
    if failure is None and denominator.value == 0:
        failure = "division by zero"
    return figure(numerator.value / denominator.value if failure is None else 0.0, failure)
