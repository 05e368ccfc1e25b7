"""The inference routes' request check: which bodies are checked against the input schema, and how."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelreg.services.api.domain_errors import InvalidModelInputs
from modelreg.services.api.predict.checks import InputSchemaCheck, body_problems, is_json
from modelreg.shared.documents import ModelDetails

SCHEMA = {"inputs": [{"name": "x", "type": "tensor(float)", "shape": [None, 2]}]}


def body(value: object) -> bytes:
    return msgspec.json.encode(value)


def test_a_fitting_body_has_no_problem() -> None:
    assert body_problems(SCHEMA, body({"inputs": {"x": [[1.0, 2.0]]}}), "application/json") == []


def test_each_offending_input_is_named() -> None:
    problems = body_problems(SCHEMA, body({"inputs": {"x": [[1.0]], "y": 1}}), None)
    assert sorted(str(p.name) for p in problems) == ["x", "y"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"x": [[1.0, 2.0]]}'])
def test_a_body_that_is_not_an_inputs_object_is_refused_as_a_whole(raw: bytes) -> None:
    problems = body_problems(SCHEMA, raw, "application/json; charset=utf-8")
    assert [p.name for p in problems] == [None]


@given(st.binary(max_size=64))
def test_schemas_without_inputs_and_other_content_types_are_not_checked(raw: bytes) -> None:
    assert body_problems(None, raw, None) == []
    assert body_problems({"x": "float[]"}, raw, "application/json") == []
    assert body_problems(SCHEMA, raw, "application/octet-stream") == []


def test_json_content_types() -> None:
    assert is_json(None) and is_json("application/json") and is_json("application/vnd.api+json; q=1")
    assert not is_json("image/png") and not is_json("text/plain")


async def test_the_check_raises_the_domain_error_with_every_problem() -> None:
    details = ModelDetails.model_construct(input_schema=SCHEMA)
    with pytest.raises(InvalidModelInputs) as refused:
        await InputSchemaCheck().check(details, body({"inputs": {}}), None)
    assert refused.value.details == {"inputs": [{"input": "x", "message": "missing input"}]}
