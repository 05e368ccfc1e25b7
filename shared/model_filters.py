"""PURE: which fields and operators the list route's filter allows, and their MongoDB query.

`check_filter` takes a parsed filter (`shared/filter_language.py`) through the allow-list: every field is
known, every operator allowed for it, every value of the field's type (converted: datetimes, booleans). Only
then does `to_mongo` build the query, from this module's own operator names and paths: nothing the client
typed becomes an operator, a field path or a regex (LIKE patterns are escaped, wildcards translated, and
anchored). Values are always compared with `$eq`/`$ne`/`$in`/..., so a value such as `{"$ne": 1}` or
`'$where'` is a literal string that matches nothing.

Adding a field whose values live elsewhere (`alias`: a lookup of aliases → model ids) is one entry in
`LOOKUP_FIELDS`: the service resolves each such comparison to model ids (`lookups`) and `to_mongo` turns it
into `model_id IN (...)`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelreg.shared.contracts import DeploymentStatus, ModelFormat
from modelreg.shared.filter_language import And, Comparison, FilterError, Node, Op, Or, Scalar, parse_filter
from modelreg.shared.tags import TAG_KEY_PATTERN


class Kind(enum.Enum):
    TEXT = "text"
    BOOL = "bool"
    TIME = "time"
    FORMAT = "model_format"
    STATUS = "deployment_status"
    LOOKUP = "lookup"


ORDERED = frozenset({Op.EQ, Op.NE, Op.LT, Op.GT, Op.LE, Op.GE, Op.IN})
OPERATORS: dict[Kind, frozenset[Op]] = {
    Kind.TEXT: ORDERED | {Op.LIKE, Op.ILIKE},
    Kind.BOOL: frozenset({Op.EQ, Op.NE}),
    Kind.TIME: frozenset({Op.EQ, Op.NE, Op.LT, Op.GT, Op.LE, Op.GE}),
    Kind.FORMAT: frozenset({Op.EQ, Op.NE, Op.IN}),
    Kind.STATUS: frozenset({Op.EQ, Op.NE, Op.IN}),
    Kind.LOOKUP: frozenset({Op.EQ, Op.IN}),
}

# Filter field → (stored path, kind). `tags.<key>` is handled apart (path tags.<key>, kind TEXT).
FIELDS: dict[str, tuple[str, Kind]] = {
    "name": ("name", Kind.TEXT),
    "version": ("version", Kind.TEXT),
    "model_format": ("model_format", Kind.FORMAT),
    "framework": ("framework", Kind.TEXT),
    "task_type": ("task_type", Kind.TEXT),
    "deployment_status": ("deployment_status", Kind.STATUS),
    "deployed": ("deployed", Kind.BOOL),
    "created_at": ("created_at", Kind.TIME),
    "updated_at": ("updated_at", Kind.TIME),
}
# Fields answered by a lookup to model ids (e.g. "alias": the models the named aliases point at).
LOOKUP_FIELDS: frozenset[str] = frozenset({"alias"})
# Known but not filterable yet: a clear refusal rather than "unknown field".
UNAVAILABLE_FIELDS: dict[str, str] = {}

MONGO_OPERATORS = {
    Op.EQ: "$eq",
    Op.NE: "$ne",
    Op.LT: "$lt",
    Op.GT: "$gt",
    Op.LE: "$lte",
    Op.GE: "$gte",
    Op.IN: "$in",
}
TAG_PREFIX = "tags."
_TAG_KEY = re.compile(TAG_KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class Checked:
    """A comparison that passed the allow-list: the stored path, and values of the field's type."""

    path: str
    kind: Kind
    op: Op
    values: tuple[Any, ...]  # one value, except for IN
    field: str


@dataclass(frozen=True, slots=True)
class AllOf:
    terms: tuple[CheckedNode, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    terms: tuple[CheckedNode, ...]


CheckedNode = Checked | AllOf | AnyOf


def compile_filter(text: str) -> CheckedNode:
    """Parse and check a filter; FilterError (with its position) for anything refused."""
    return check_filter(parse_filter(text))


def check_filter(node: Node) -> CheckedNode:
    if isinstance(node, And):
        return AllOf(tuple(check_filter(term) for term in node.terms))
    if isinstance(node, Or):
        return AnyOf(tuple(check_filter(term) for term in node.terms))
    return _check_comparison(node)


def _field(comparison: Comparison) -> tuple[str, Kind]:
    name = comparison.field
    if name.startswith(TAG_PREFIX):
        key = name.removeprefix(TAG_PREFIX)
        if not _TAG_KEY.fullmatch(key):
            raise FilterError(f"invalid tag key {key!r}", comparison.position, "invalid_filter_field")
        return name, Kind.TEXT
    if name in LOOKUP_FIELDS:
        return name, Kind.LOOKUP
    if name in FIELDS:
        return FIELDS[name]
    if name in UNAVAILABLE_FIELDS:
        raise FilterError(UNAVAILABLE_FIELDS[name], comparison.position, "filter_field_unavailable")
    known = ", ".join([*FIELDS, *sorted(LOOKUP_FIELDS), "tags.<key>"])
    raise FilterError(
        f"unknown field {name!r} (fields: {known})", comparison.position, "invalid_filter_field"
    )


def _check_comparison(comparison: Comparison) -> Checked:
    path, kind = _field(comparison)
    if comparison.op not in OPERATORS[kind]:
        allowed = ", ".join(op.value for op in sorted(OPERATORS[kind], key=list(Op).index))
        raise FilterError(
            f"{comparison.op.value} is not allowed on {comparison.field} (allowed: {allowed})",
            comparison.position,
            "invalid_filter_operator",
        )
    raw = comparison.value if isinstance(comparison.value, tuple) else (comparison.value,)
    values = tuple(_typed(comparison, kind, value) for value in raw)
    return Checked(path=path, kind=kind, op=comparison.op, values=values, field=comparison.field)


def _refuse(comparison: Comparison, expected: str, value: Scalar) -> FilterError:
    return FilterError(
        f"{comparison.field} takes {expected}, not {value!r}", comparison.position, "invalid_filter_value"
    )


def _typed(comparison: Comparison, kind: Kind, value: Scalar) -> Any:
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise _refuse(comparison, "TRUE or FALSE", value)
        return value
    if not isinstance(value, str):
        raise _refuse(comparison, "a quoted string", value)
    if kind is Kind.TIME:
        try:
            parsed = datetime.fromisoformat(value)
            # A time without a zone is read as UTC, as the registry stores every time.
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: a zone moving it past year 1 or 9999
            raise _refuse(comparison, "an RFC 3339 time ('2026-01-31T12:00:00Z')", value) from None
    if kind is Kind.FORMAT:
        return _member(comparison, ModelFormat, value)
    if kind is Kind.STATUS:
        return _member(comparison, DeploymentStatus, value)
    return value


def _member(comparison: Comparison, enum_type: type[enum.StrEnum], value: str) -> str:
    allowed = [member.value for member in enum_type]
    if value not in allowed:
        raise _refuse(comparison, "one of " + ", ".join(allowed), value)
    return value


def like_regex(pattern: str) -> str:
    """An anchored regex for a LIKE pattern: `%` any run, `_` one character, `\\` escapes the next one;
    everything else literal (escaped)."""
    parts: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        elif char == "\\":
            parts.append(re.escape(next(chars, "\\")))
        else:
            parts.append(re.escape(char))
    return "^" + "".join(parts) + "$"


def lookup_terms(node: CheckedNode) -> list[Checked]:
    """The comparisons the service resolves to model ids before `to_mongo` (fields in LOOKUP_FIELDS)."""
    if isinstance(node, Checked):
        return [node] if node.kind is Kind.LOOKUP else []
    return [found for term in node.terms for found in lookup_terms(term)]


# The status the API reports (deployment_rules.effective_status), computed in the query: the observed
# status (legacy documents: from `deployed`), unless a deploy/undeploy request is newer than the last
# observation.
_OBSERVED_STATUS: dict[str, Any] = {
    "$ifNull": [
        "$deployment_status",
        {"$cond": [{"$eq": ["$deployed", True]}, "deployed", "not_deployed"]},
    ]
}
_REQUEST_UNOBSERVED: dict[str, Any] = {
    "$and": [
        {"$in": ["$desired_state", ["deployed", "not_deployed"]]},
        {"$ne": [{"$ifNull": ["$desired_at", None]}, None]},
        {
            "$or": [
                {"$eq": [{"$ifNull": ["$observed_at", None]}, None]},
                {"$lt": ["$observed_at", "$desired_at"]},
            ]
        },
    ]
}
EFFECTIVE_STATUS: dict[str, Any] = {
    "$cond": [
        _REQUEST_UNOBSERVED,
        {
            "$cond": [
                {"$eq": ["$desired_state", "deployed"]},
                {"$cond": [{"$eq": ["$deployed", True]}, "deployed", "pending"]},
                {"$cond": [{"$eq": [_OBSERVED_STATUS, "not_deployed"]}, "not_deployed", "deleting"]},
            ]
        },
        _OBSERVED_STATUS,
    ]
}


def to_mongo(node: CheckedNode, lookups: Mapping[Checked, Sequence[str]] | None = None) -> dict[str, Any]:
    """The MongoDB query of a checked filter; `lookups` holds the model ids of each lookup comparison."""
    if isinstance(node, AllOf):
        return {"$and": [to_mongo(term, lookups) for term in node.terms]}
    if isinstance(node, AnyOf):
        return {"$or": [to_mongo(term, lookups) for term in node.terms]}
    if node.kind is Kind.LOOKUP:
        return {"model_id": {"$in": list((lookups or {}).get(node, ()))}}
    if node.kind is Kind.STATUS:
        statuses = list(node.values)
        matches: dict[str, Any] = {"$in": [EFFECTIVE_STATUS, statuses]}
        return {"$expr": {"$not": [matches]} if node.op is Op.NE else matches}
    if node.op in (Op.LIKE, Op.ILIKE):
        regex: dict[str, Any] = {"$regex": like_regex(node.values[0])}
        if node.op is Op.ILIKE:
            regex["$options"] = "i"
        return {node.path: regex}
    if node.op is Op.IN:
        return {node.path: {"$in": list(node.values)}}
    return {node.path: {MONGO_OPERATORS[node.op]: node.values[0]}}
