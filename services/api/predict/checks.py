"""The inference routes' request check: a JSON body's `inputs` against the model's `input_schema`.

`shared.signatures.check_inputs` decides; this module only reads the body. Checked: requests whose body is
JSON (content type `application/json`, `…+json`, or none) to models whose `input_schema` declares `inputs`.
Models without such a schema, and other content types (images, protobuf...), are forwarded unchecked.
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelreg.services.api.domain_errors import InvalidModelInputs
from modelreg.shared.documents import ModelDetails
from modelreg.shared.signatures import InputProblem, check_inputs, declares_inputs


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def body_problems(
    input_schema: dict[str, Any] | None, body: bytes, content_type: str | None
) -> list[InputProblem]:
    """Why the request does not fit the schema; empty when it does or nothing is checked."""
    if not declares_inputs(input_schema) or not is_json(content_type):
        return []
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return [InputProblem(None, 'the body must be JSON: {"inputs": {name: value}}')]
    if not isinstance(request, dict) or "inputs" not in request:
        return [InputProblem(None, 'the body must be a JSON object with `inputs`: {"inputs": {name: value}}')]
    return check_inputs(input_schema, request["inputs"])


class InputSchemaCheck:
    """`RequestCheck`: refuses (422 `invalid_model_inputs`, naming each input) what does not fit."""

    async def check(self, details: ModelDetails, body: bytes, content_type: str | None) -> None:
        problems = body_problems(details.input_schema, body, content_type)
        if problems:
            raise InvalidModelInputs([problem.as_json() for problem in problems])
