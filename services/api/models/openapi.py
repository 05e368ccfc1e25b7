"""OpenAPI for the upload: its body is read as a stream, so Litestar cannot derive its schema itself.

The form schema is generated from `UploadForm` (the struct that validates the fields), so the documentation
and the validation cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from modelreg.services.api.models.schemas import NamespaceUploadForm, UploadForm
from modelreg.services.api.models.upload import ARCHIVE_FIELD

# JSON Schema keyword → Litestar Schema attribute, for the keywords msgspec emits for flat structs.
_KEYWORDS = {
    "title": "title",
    "description": "description",
    "enum": "enum",
    "default": "default",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
}


def _schema(json_schema: dict[str, Any]) -> Schema:
    json_schema = dict(json_schema)
    variants = [v for v in json_schema.pop("anyOf", []) if v.get("type") != "null"]
    if variants:
        # A form field is either sent or absent, never null: an optional field is its non-null variant.
        (variant,) = variants
        json_schema = {**variant, **json_schema}
    values: dict[str, Any] = {}
    for keyword, value in json_schema.items():
        if keyword == "type":
            values["type"] = OpenAPIType(value)
        elif keyword in _KEYWORDS:
            values[_KEYWORDS[keyword]] = value
        else:
            raise ValueError(f"unsupported JSON Schema keyword {keyword!r} in the upload form")
    if "enum" in values and "type" not in values:
        values["type"] = OpenAPIType.STRING
    return Schema(**values)


def upload_form_schema(form: type[UploadForm] = UploadForm, title: str = "ModelUploadForm") -> Schema:
    (component,) = msgspec.json.schema_components([form])[1].values()
    properties: dict[str, Reference | Schema] = {
        ARCHIVE_FIELD: Schema(
            type=OpenAPIType.STRING,
            format=OpenAPIFormat.BINARY,
            description="The model archive (.tar.gz)",
        )
    }
    properties.update({name: _schema(prop) for name, prop in component["properties"].items()})
    return Schema(
        type=OpenAPIType.OBJECT,
        title=title,
        properties=properties,
        required=[ARCHIVE_FIELD, *component["required"]],
    )


UPLOAD_FORM_SCHEMA = upload_form_schema(NamespaceUploadForm)


@dataclass
class UploadOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The archive and its metadata",
            content={"multipart/form-data": OpenAPIMediaType(schema=UPLOAD_FORM_SCHEMA)},
        )


@dataclass
class FilteredListOperation(Operation):
    """The list route: an invalid `filter` answers 422 with ErrorResponse (and its position), other invalid
    parameters 422 with HTTPValidationError; the 422 response documents both."""

    def __post_init__(self) -> None:
        response = (self.responses or {}).get("422")
        if not isinstance(response, OpenAPIResponse) or not response.content:
            return
        media = response.content.get("application/json")
        # anyOf, not oneOf: HTTPValidationError (no required property) also matches an ErrorResponse.
        if media is not None and media.schema is not None:
            media.schema = Schema(any_of=[media.schema, Reference(ref="#/components/schemas/ErrorResponse")])
