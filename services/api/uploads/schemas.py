"""Bodies of the presigned upload routes, with the field names of Mixpeek's SDK (`CreateModelUploadRequest`,
`ModelPresignedURLResponse`, `ConfirmModelUploadRequest`, `ConfirmModelUploadResponse`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from modelreg.services.api.models.schemas import GIB, LABEL_PATTERN, MIN_MEMORY_GB, ModelFormatName

MIN_EXPIRATION_S = 60
MAX_EXPIRATION_S = 24 * 3600

Label = Annotated[str, msgspec.Meta(max_length=256, pattern=LABEL_PATTERN)]


class UploadResourceRequirements(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Resource requirements for model deployment (Mixpeek's `ModelResourceRequirements`)."""

    num_cpus: Annotated[float, msgspec.Meta(ge=0.1, le=64, description="Number of CPUs")] = 1.0
    num_gpus: Annotated[int, msgspec.Meta(ge=0, le=8, description="Number of GPUs")] = 0
    memory: Annotated[
        int,
        msgspec.Meta(
            ge=round(MIN_MEMORY_GB * GIB), le=1024 * GIB, description="Memory in bytes (default 4 GiB)"
        ),
    ] = 4 * GIB


class CreateModelUploadRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Announce a model archive to upload: step 1 of the presigned workflow."""

    name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=256, pattern=LABEL_PATTERN, description="Model name")
    ]
    version: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, pattern=LABEL_PATTERN, description="Model version")
    ]
    model_format: Annotated[ModelFormatName, msgspec.Meta(description="Format of the model weights")]
    description: (
        Annotated[str, msgspec.Meta(max_length=500, description="Description of the model")] | None
    ) = None
    file_size_bytes: (
        Annotated[
            int,
            msgspec.Meta(ge=1, description="Expected archive size; refused upfront beyond the archive limit"),
        ]
        | None
    ) = None
    presigned_url_expiration: Annotated[
        int,
        msgspec.Meta(
            ge=MIN_EXPIRATION_S, le=MAX_EXPIRATION_S, description="Seconds the upload URL stays valid"
        ),
    ] = 3600
    resource_requirements: UploadResourceRequirements | None = None
    framework: (
        Annotated[Label, msgspec.Meta(description="ML framework (e.g., sentence-transformers)")] | None
    ) = None
    task_type: (
        Annotated[Label, msgspec.Meta(description="Task type (e.g., embedding, classification)")] | None
    ) = None
    source: Annotated[
        Literal["customer", "mixpeek", "system"],
        msgspec.Meta(description="Accepted for Mixpeek compatibility; not used by the registry"),
    ] = "customer"


class PresignedURL(msgspec.Struct, kw_only=True):
    """The fields both presigned-URL answers start with; a subclass's own fields follow, in this order."""

    upload_id: Annotated[str, msgspec.Meta(title="Upload Id", description="Upload ID to use when confirming")]
    presigned_url: Annotated[
        str,
        msgspec.Meta(
            title="Presigned Url",
            description="PUT the archive here: an S3 presigned URL, or a signed URL on the registry",
        ),
    ]
    required_content_type: Annotated[
        str,
        msgspec.Meta(
            title="Required Content Type", description="Send exactly this Content-Type with the PUT"
        ),
    ]
    s3_key: Annotated[
        str,
        msgspec.Meta(
            title="S3 Key", description="Key of the uploaded bytes in the bucket (or under the archive root)"
        ),
    ]
    expires_at: Annotated[
        datetime, msgspec.Meta(title="Expires At", description="When the URL and the upload expire")
    ]


class ModelPresignedURLResponse(PresignedURL, kw_only=True):
    """Where to PUT the archive, and until when."""

    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id", description="Namespace of the model")]
    name: Annotated[str, msgspec.Meta(title="Name", description="Model name")]
    version: Annotated[str, msgspec.Meta(title="Version", description="Model version")]
    model_format: Annotated[ModelFormatName, msgspec.Meta(title="Model Format", description="Model format")]


class ConfirmModelUploadRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Optional integrity checks when confirming an upload."""

    etag: Annotated[str, msgspec.Meta(max_length=256, description="ETag the PUT answered")] | None = None
    file_size_bytes: Annotated[int, msgspec.Meta(ge=0, description="Size the client uploaded")] | None = None


class ConfirmModelUploadResponse(msgspec.Struct, kw_only=True):
    """The upload checked and registered as a model."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    upload_id: Annotated[str, msgspec.Meta(title="Upload Id")]
    model_id: Annotated[str | None, msgspec.Meta(title="Model Id", description="The model created")] = None
    validation_status: Annotated[
        Literal["pending", "passed", "failed"], msgspec.Meta(title="Validation Status")
    ] = "passed"
    validation_errors: Annotated[list[str], msgspec.Meta(title="Validation Errors")] = msgspec.field(
        default_factory=list
    )
    s3_archive_url: Annotated[
        str | None, msgspec.Meta(title="S3 Archive Url", description="URL of the stored model archive")
    ] = None
    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id")]
    message: Annotated[str | None, msgspec.Meta(title="Message")] = None


class UploadReceivedResponse(msgspec.Struct, kw_only=True):
    """The archive arrived (the answer of the registry's own upload URL)."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    upload_id: Annotated[str, msgspec.Meta(title="Upload Id")]
    size_bytes: Annotated[int, msgspec.Meta(title="Size Bytes")]
    sha256: Annotated[str, msgspec.Meta(title="Sha256", description="SHA-256 of the bytes received")]


# --- shared (org-level) models: the shapes of the SDK's ModelsApi ---------------------------------------


class OrgModelPresignedURLResponse(PresignedURL, kw_only=True):
    """Where to PUT a shared model's archive, and until when (the SDK's `ModelPresignedURLResponse`)."""

    organization_id: Annotated[
        str,
        msgspec.Meta(title="Organization Id", description="Owner organization (MODELREG_ORGANIZATION_ID)"),
    ]
    name: Annotated[str, msgspec.Meta(title="Name", description="Model name")]
    version: Annotated[str, msgspec.Meta(title="Version", description="Model version")]
    model_format: Annotated[ModelFormatName, msgspec.Meta(title="Model Format", description="Model format")]


class OrgConfirmModelUploadResponse(msgspec.Struct, kw_only=True):
    """The upload checked and registered as a shared model (the SDK's `ConfirmModelUploadResponse`)."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    upload_id: Annotated[str, msgspec.Meta(title="Upload Id")]
    model_id: Annotated[
        str | None, msgspec.Meta(title="Model Id", description="The shared model created")
    ] = None
    validation_status: Annotated[
        Literal["pending", "passed", "failed"], msgspec.Meta(title="Validation Status")
    ] = "passed"
    validation_errors: Annotated[list[str], msgspec.Meta(title="Validation Errors")] = msgspec.field(
        default_factory=list
    )
    s3_archive_url: Annotated[
        str | None, msgspec.Meta(title="S3 Archive Url", description="URL of the stored model archive")
    ] = None
    message: Annotated[str | None, msgspec.Meta(title="Message")] = None
