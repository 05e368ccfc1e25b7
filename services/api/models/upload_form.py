"""The upload's text fields, validated as an UploadForm."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from modelreg.services.api.domain_errors import InvalidField
from modelreg.services.api.models.schemas import UploadForm
from modelreg.services.api.models.upload import ARCHIVE_FIELD

FormT = TypeVar("FormT", bound=UploadForm)

_FIELD_IN_ERROR = re.compile(r"at `\$\.([A-Za-z0-9_]+)`|field `([^`]+)`")


def parse_form(fields: dict[str, str], form_type: type[FormT]) -> FormT:
    """The upload's text fields as a validated `form_type`, or InvalidField naming the offending field."""
    if ARCHIVE_FIELD in fields:
        raise InvalidField("'file' must be an uploaded file (curl -F file=@model.tar.gz)", ARCHIVE_FIELD)
    # An empty optional field means "not given" (HTML forms and curl send empty strings).
    values = {key: value for key, value in fields.items() if value != ""}
    try:
        return msgspec.convert(values, form_type, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _FIELD_IN_ERROR.search(message)
        field = (match.group(1) or match.group(2)) if match else None
        raise InvalidField(message, field) from None
