"""The upload's JSON fields (tags, input_schema, output_schema), and the signature read from the archive
when the client sends none."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg.services.api.domain_errors import InvalidField
from modelreg.services.api.models.schemas import NamespaceUploadForm, UploadForm
from modelreg.shared.contracts import ModelFormat
from modelreg.shared.signature_reading import infer_schemas
from modelreg.shared.tags import TagError, check_tags


@dataclass(frozen=True)
class UploadExtras:
    tags: dict[str, str] = field(default_factory=dict)
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None


def _json_object(text: str | None, name: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidField(f"{name} must be a JSON object: {exc}", name) from None
    if not isinstance(value, dict):
        raise InvalidField(f"{name} must be a JSON object", name)
    return value


def extras_of(form: UploadForm) -> UploadExtras:
    """The JSON fields of a namespace upload, checked; other forms (presigned uploads) have none."""
    if not isinstance(form, NamespaceUploadForm):
        return UploadExtras()
    tags = _json_object(form.tags, "tags") or {}
    try:
        checked = check_tags(tags)
    except TagError as exc:
        raise InvalidField(exc.message, "tags") from None
    return UploadExtras(
        tags=checked,
        input_schema=_json_object(form.input_schema, "input_schema"),
        output_schema=_json_object(form.output_schema, "output_schema"),
    )


async def with_inferred_signature(
    extras: UploadExtras, archive: Path, model_format: ModelFormat
) -> UploadExtras:
    """The extras with each schema the client did not send read from the archive (off the event loop)."""
    if extras.input_schema is not None and extras.output_schema is not None:
        return extras
    inferred_input, inferred_output = await asyncio.to_thread(infer_schemas, archive, model_format)
    return UploadExtras(
        tags=extras.tags,
        input_schema=extras.input_schema if extras.input_schema is not None else inferred_input,
        output_schema=extras.output_schema if extras.output_schema is not None else inferred_output,
    )
