"""The filter language (shared/filter_language.py) and its translation by allow-list
(shared/model_filters.py): parsing, positions of errors, and properties of the MongoDB query it emits."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg.shared.contracts import DeploymentStatus
from modelreg.shared.filter_language import MAX_DEPTH, And, Comparison, FilterError, Op, Or, parse_filter
from modelreg.shared.model_filters import (
    EFFECTIVE_STATUS,
    FIELDS,
    Checked,
    Kind,
    compile_filter,
    like_regex,
    lookup_terms,
    to_mongo,
)

# --- parsing --------------------------------------------------------------------------------------------


def test_precedence_and_binds_tighter_than_or() -> None:
    tree = parse_filter("name = 'a' OR name = 'b' AND version = '1'")
    assert tree == Or(
        (
            Comparison("name", Op.EQ, "a", 0),
            And((Comparison("name", Op.EQ, "b", 14), Comparison("version", Op.EQ, "1", 29))),
        )
    )


def test_parentheses_keywords_in_any_case_and_doubled_quotes() -> None:
    tree = parse_filter("(name like 'it''s%' or name In ('x', 'y')) and deployed = true")
    assert tree == And(
        (
            Or(
                (
                    Comparison("name", Op.LIKE, "it's%", 1),
                    Comparison("name", Op.IN, ("x", "y"), 23),
                )
            ),
            Comparison("deployed", Op.EQ, True, 47),
        )
    )


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("", 0),
        ("name", 4),
        ("name =", 6),
        ("name = 'a' AND", 14),
        ("name IN ()", 9),
        ("name IN ('a' 'b')", 13),
        ("name LIKE 3", 10),
        ("name = 'a')", 10),
        ("name = 'a' # comment", 11),
        ("name = `a`", 7),
        ("name = 'a\x00b'", 9),
        ("name LIKE '\n%'", 11),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, position: int) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.position == position
    assert caught.value.code == "invalid_filter"


def test_bounds_on_nesting_terms_and_length() -> None:
    with pytest.raises(FilterError, match="nest deeper"):
        parse_filter("(" * (MAX_DEPTH + 1) + "name = 'a'" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(FilterError, match="comparisons"):
        parse_filter(" OR ".join(["name = 'a'"] * 65))
    with pytest.raises(FilterError, match="longer than"):
        parse_filter("name = '" + "a" * 3000 + "'")


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_any_text_parses_or_raises_a_filter_error(text: str) -> None:
    try:
        compile_filter(text)
    except FilterError as exc:
        assert 0 <= exc.position <= len(text)


# --- the allow-list and the query -----------------------------------------------------------------------

TAG_KEYS = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_:\-]{0,10}\Z")
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)  # no control characters
TEXT_FIELDS = [name for name, (_, kind) in FIELDS.items() if kind is Kind.TEXT]


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@st.composite
def comparisons(draw: Any) -> str:
    choice = draw(st.sampled_from(["text", "tag", "like", "in", "bool", "time", "format", "status"]))
    if choice in ("text", "tag"):
        field = draw(st.sampled_from(TEXT_FIELDS)) if choice == "text" else "tags." + draw(TAG_KEYS)
        op = draw(st.sampled_from(["=", "!=", "<", ">", "<=", ">="]))
        return f"{field} {op} {quoted(draw(TEXT))}"
    if choice == "like":
        field = draw(st.sampled_from([*TEXT_FIELDS, "tags.k"]))
        return f"{field} {draw(st.sampled_from(['LIKE', 'ILIKE']))} {quoted(draw(TEXT))}"
    if choice == "in":
        values = draw(st.lists(TEXT, min_size=1, max_size=4))
        return f"name IN ({', '.join(quoted(v) for v in values)})"
    if choice == "bool":
        return f"deployed {draw(st.sampled_from(['=', '!=']))} {draw(st.sampled_from(['TRUE', 'FALSE']))}"
    if choice == "time":
        moment = draw(st.datetimes(timezones=st.just(UTC)))
        return f"created_at {draw(st.sampled_from(['<', '>', '>=']))} '{moment.isoformat()}'"
    if choice == "format":
        return f"model_format = {draw(st.sampled_from(['onnx', 'safetensors']))!r}"
    return f"deployment_status != {draw(st.sampled_from(['pending', 'deployed']))!r}"


filters = st.recursive(
    comparisons(),
    lambda inner: st.tuples(inner, st.sampled_from([" AND ", " OR "]), inner).map(
        lambda parts: f"({parts[0]}{parts[1]}{parts[2]})"
    ),
    max_leaves=8,
)

ALLOWED_OPERATORS = {"$and", "$or", "$eq", "$ne", "$lt", "$gt", "$lte", "$gte", "$in", "$regex", "$options"}


def assert_only_allowed(query: dict[str, Any]) -> None:
    """Every key is an allowed operator or a known path; regexes are anchored; the only $expr is ours."""
    for key, value in query.items():
        if key == "$expr":  # the registry's own status expression, with statuses from the enum
            inner = value["$not"][0] if "$not" in value else value
            assert set(inner) == {"$in"} and inner["$in"][0] == EFFECTIVE_STATUS
            assert all(status in set(DeploymentStatus) for status in inner["$in"][1])
            continue
        if key in ("$and", "$or"):
            for clause in value:
                assert_only_allowed(clause)
            continue
        assert key in FIELDS or re.fullmatch(r"tags\.[A-Za-z0-9_][A-Za-z0-9_:\-]*", key), key
        assert isinstance(value, dict) and len(value) in (1, 2)
        assert set(value) <= ALLOWED_OPERATORS, value
        if "$regex" in value:
            assert value["$regex"].startswith("^") and value["$regex"].endswith("$")
            assert value.get("$options", "i") == "i"
        for operand in value.values():
            operands = operand if isinstance(operand, list) else [operand]
            assert all(isinstance(o, str | bool | datetime) for o in operands)


@settings(max_examples=300)
@given(filters)
def test_translation_never_emits_anything_outside_the_allow_list(text: str) -> None:
    assert_only_allowed(to_mongo(compile_filter(text)))


@given(TEXT)
def test_values_are_literals_whatever_they_hold(value: str) -> None:
    # A value that looks like an operator, a document or a regex is compared as the string it is.
    assert to_mongo(compile_filter(f"name = {quoted(value)}")) == {"name": {"$eq": value}}
    assert to_mongo(compile_filter(f"tags.team != {quoted(value)}")) == {"tags.team": {"$ne": value}}


@given(st.text(alphabet=st.characters(blacklist_characters="%_\\\n"), max_size=30), st.text(max_size=30))
def test_a_like_pattern_without_wildcards_matches_only_itself(literal: str, other: str) -> None:
    regex = re.compile(like_regex(literal), re.DOTALL)
    assert regex.fullmatch(literal)
    if other != literal:
        assert not regex.fullmatch(other)


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("res%", ["res", "resnet", "res.x"], ["Res", "xres"]),
        ("%.onnx", ["a.onnx", ".onnx"], ["aonnx", "a.onnx.bak"]),
        ("v_", ["v1", "vx"], ["v", "v12"]),
        ("50\\%", ["50%"], ["500", "50"]),
        ("a\\_b", ["a_b"], ["axb"]),
        ("(a|b)*", ["(a|b)*"], ["a", "ab", ""]),
        ("[abc]+$^", ["[abc]+$^"], ["a"]),
    ],
)
def test_like_wildcards_and_escapes(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    regex = re.compile(like_regex(pattern))
    for text in matching:
        assert regex.fullmatch(text), text
    for text in not_matching:
        assert not regex.fullmatch(text), text


def test_ilike_is_case_insensitive_and_like_is_not() -> None:
    assert to_mongo(compile_filter("name ILIKE 'a%'")) == {"name": {"$regex": "^a.*$", "$options": "i"}}
    assert to_mongo(compile_filter("name LIKE 'a%'")) == {"name": {"$regex": "^a.*$"}}


def test_times_are_read_as_utc() -> None:
    query = to_mongo(compile_filter("created_at > '2026-01-02T03:04:05+02:00'"))
    assert query == {"created_at": {"$gt": datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)}}
    naive = to_mongo(compile_filter("updated_at <= '2026-01-02'"))
    assert naive == {"updated_at": {"$lte": datetime(2026, 1, 2, tzinfo=UTC)}}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("owner = 'x'", "invalid_filter_field"),
        ("tags.a:b:c = 'x'", None),
        ("deployed > TRUE", "invalid_filter_operator"),
        ("model_format LIKE 'onnx'", "invalid_filter_operator"),
        ("name = TRUE", "invalid_filter_value"),
        ("name = 1", "invalid_filter_value"),
        ("deployment_status = 'running'", "invalid_filter_value"),
        ("created_at > '0001-01-01T00:00:00+01:00'", "invalid_filter_value"),
        ("updated_at < '9999-12-31T23:59:59-14:00'", "invalid_filter_value"),
        ("alias = 'prod'", None),
        ("alias LIKE 'prod%'", "invalid_filter_operator"),
        ("alias = TRUE", "invalid_filter_value"),
    ],
)
def test_the_allow_list_refuses_with_a_code(text: str, code: str | None) -> None:
    if code is None:
        compile_filter(text)
        return
    with pytest.raises(FilterError) as caught:
        compile_filter(text)
    assert caught.value.code == code and caught.value.position == 0


def test_lookup_fields_become_model_ids() -> None:
    """How `alias` plugs in: one entry in LOOKUP_FIELDS, resolved by the service to model ids."""
    import modelreg.shared.model_filters as rules

    checked = rules.compile_filter("alias = 'prod' AND name = 'x'")
    (term,) = lookup_terms(checked)
    assert isinstance(term, Checked) and term.values == ("prod",)
    assert to_mongo(checked, {term: ["m1", "m2"]}) == {
        "$and": [{"model_id": {"$in": ["m1", "m2"]}}, {"name": {"$eq": "x"}}]
    }
    assert to_mongo(checked) == {"$and": [{"model_id": {"$in": []}}, {"name": {"$eq": "x"}}]}
