"""OpenAPI for the shared model's upload (its body is read as a stream), generated from OrgUploadForm."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from modelreg.services.api.models.openapi import upload_form_schema
from modelreg.services.api.org_models.schemas import OrgUploadForm

ORG_UPLOAD_FORM_SCHEMA = upload_form_schema(OrgUploadForm, "OrgModelUploadForm")


@dataclass
class OrgUploadOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="The archive and its metadata",
            content={"multipart/form-data": OpenAPIMediaType(schema=ORG_UPLOAD_FORM_SCHEMA)},
        )
