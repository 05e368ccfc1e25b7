"""Bodies of the shared-model routes, in the shapes of the Mixpeek SDK's models (extra properties after)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from modelreg.services.api.models.schemas import (
    GIB,
    LABEL_PATTERN,
    MIN_MEMORY_GB,
    DeploymentStatusName,
    ModelFormatName,
    UploadForm,
)
from modelreg.shared.contracts import ModelResourceRequirements


def _meta(title: str, description: str) -> msgspec.Meta:
    return msgspec.Meta(title=title, description=description)


class OrgUploadForm(UploadForm, kw_only=True, forbid_unknown_fields=True):
    """The text fields of a shared model's upload: the namespace upload's, and a description."""

    description: (
        Annotated[str, msgspec.Meta(max_length=4096, pattern=LABEL_PATTERN, description="Model description")]
        | None
    ) = None


class ModelRegistryIdentity(msgspec.Struct, kw_only=True):
    """The ids a shared model's entry derives from its model_id."""

    registry_id: Annotated[str, _meta("Registry Id", "org:<organization_id>:<model_id>")]
    shared_model_key: Annotated[str, _meta("Shared Model Key", "The model_id")]
    inference_service_id: Annotated[
        str, _meta("Inference Service Id", "The Ray Serve application name prefix: <namespace>/<model_id>")
    ]


Source = Literal["customer", "mixpeek", "system"]
ValidationStatus = Literal["passed", "failed", "pending"]


class OrgModelDocument(msgspec.Struct, kw_only=True):
    """A shared (org-level) model, enabled per namespace."""

    model_id: Annotated[str, _meta("Model Id", "Unique model identifier")]
    organization_id: Annotated[str, _meta("Organization Id", "Owner organization (MODELREG_ORGANIZATION_ID)")]
    name: Annotated[str, _meta("Name", "Model name")]
    version: Annotated[str, _meta("Version", "Model version")]
    description: Annotated[str | None, _meta("Description", "Model description")] = None
    source: Annotated[Source, _meta("Source", "Who created the model: always customer here")] = "customer"
    exportable: Annotated[bool, _meta("Exportable", "Whether the archive can be downloaded")] = True
    license: Annotated[str | None, msgspec.Meta(title="License")] = None
    s3_archive_url: Annotated[str, _meta("S3 Archive Url", "URL of the stored archive (s3:// or file://)")]
    model_format: Annotated[ModelFormatName, _meta("Model Format", "Model format/framework")]
    model_hash: Annotated[str, _meta("Model Hash", "SHA256 hash of the model archive")]
    validation_status: Annotated[
        ValidationStatus, _meta("Validation Status", "passed: the archive passed the upload's checks")
    ] = "passed"
    validation_errors: Annotated[list[str] | None, msgspec.Meta(title="Validation Errors")] = None
    deployed: Annotated[bool, _meta("Deployed", "Whether the model is deployed in any namespace")] = False
    deployment_info: Annotated[None, msgspec.Meta(description="Per namespace: see the namespace's model")] = (
        None
    )
    framework: Annotated[str | None, _meta("Framework", "ML framework")] = None
    task_type: Annotated[str | None, _meta("Task Type", "Task type")] = None
    input_schema: Annotated[dict[str, object] | None, msgspec.Meta(title="Input Schema")] = None
    output_schema: Annotated[dict[str, object] | None, msgspec.Meta(title="Output Schema")] = None
    resource_requirements: ModelResourceRequirements = msgspec.field(
        default_factory=ModelResourceRequirements
    )
    created_at: Annotated[datetime, _meta("Created At", "Creation timestamp")]
    updated_at: Annotated[datetime, _meta("Updated At", "Last update timestamp")]
    registry: ModelRegistryIdentity
    # Beyond Mixpeek's shape:
    enabled_namespaces: Annotated[
        list[str], _meta("Enabled Namespaces", "Namespaces where the model is enabled")
    ] = msgspec.field(default_factory=list)


class OrgModelDetailResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model: OrgModelDocument


class OrgModelListItem(msgspec.Struct, kw_only=True):
    model_id: Annotated[str, msgspec.Meta(title="Model Id")]
    name: Annotated[str, msgspec.Meta(title="Name")]
    version: Annotated[str, msgspec.Meta(title="Version")]
    model_format: Annotated[ModelFormatName, msgspec.Meta(title="Model Format")]
    description: Annotated[str | None, msgspec.Meta(title="Description")] = None
    source: Annotated[Source, msgspec.Meta(title="Source")] = "customer"
    exportable: Annotated[bool, msgspec.Meta(title="Exportable")] = True
    framework: Annotated[str | None, msgspec.Meta(title="Framework")] = None
    task_type: Annotated[str | None, msgspec.Meta(title="Task Type")] = None
    deployed: Annotated[bool, _meta("Deployed", "Whether the model is deployed in any namespace")]
    validation_status: Annotated[ValidationStatus, msgspec.Meta(title="Validation Status")] = "passed"
    created_at: Annotated[datetime, msgspec.Meta(title="Created At")]
    updated_at: Annotated[datetime, msgspec.Meta(title="Updated At")]
    registry: ModelRegistryIdentity


class OrgModelListResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    models: Annotated[list[OrgModelListItem], msgspec.Meta(title="Models")]
    total: Annotated[int, msgspec.Meta(title="Total")]
    organization_id: Annotated[str, msgspec.Meta(title="Organization Id")]


class OrgModelDeleteResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, msgspec.Meta(title="Model Id")]
    message: Annotated[str, msgspec.Meta(title="Message")]


class OrgModelUploadResponse(msgspec.Struct, kw_only=True):
    """A shared model registered from a multipart upload (the answer of the presigned flow's confirm)."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, msgspec.Meta(title="Model Id")]
    validation_status: Annotated[ValidationStatus, msgspec.Meta(title="Validation Status")] = "passed"
    validation_errors: Annotated[list[str] | None, msgspec.Meta(title="Validation Errors")] = None
    model_archive_url: Annotated[str, _meta("Model Archive Url", "URL of the stored model archive")]
    message: Annotated[str, msgspec.Meta(title="Message")]


# --- a namespace's view -----------------------------------------------------------------------------------


class AvailableOrgModelItem(msgspec.Struct, kw_only=True):
    model_id: Annotated[str, msgspec.Meta(title="Model Id")]
    name: Annotated[str, msgspec.Meta(title="Name")]
    version: Annotated[str, msgspec.Meta(title="Version")]
    model_format: Annotated[ModelFormatName, msgspec.Meta(title="Model Format")]
    description: Annotated[str | None, msgspec.Meta(title="Description")] = None
    framework: Annotated[str | None, msgspec.Meta(title="Framework")] = None
    task_type: Annotated[str | None, msgspec.Meta(title="Task Type")] = None
    enabled_in_namespace: Annotated[
        bool, _meta("Enabled In Namespace", "Whether already enabled in the target namespace")
    ]


class AvailableOrgModelsResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    models: Annotated[list[AvailableOrgModelItem], msgspec.Meta(title="Models")]
    total: Annotated[int, msgspec.Meta(title="Total")]
    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id")]


class ResourceOverrides(msgspec.Struct, kw_only=True, frozen=True):
    """Resource requirements of the namespace's copy, instead of the shared model's."""

    num_cpus: Annotated[float, msgspec.Meta(ge=0.1, le=64, description="Number of CPUs")] = 1
    num_gpus: Annotated[int, msgspec.Meta(ge=0, le=8, description="Number of GPUs")] = 0
    memory: Annotated[
        int, msgspec.Meta(ge=round(MIN_MEMORY_GB * GIB), le=1024 * GIB, description="Memory in bytes")
    ] = 4 * GIB


class EnableOrgModelRequest(msgspec.Struct, kw_only=True):
    """Enable a shared model in a namespace (keys not declared here are ignored)."""

    deploy: Annotated[bool, _meta("Deploy", "Deploy the model in the namespace right after enabling it")] = (
        False
    )
    resource_overrides: ResourceOverrides | None = None


class EnableOrgModelResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, msgspec.Meta(title="Model Id")]
    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id")]
    deployment_status: Annotated[
        DeploymentStatusName, _meta("Deployment Status", "The namespace copy's status after the request")
    ]
    message: Annotated[str, msgspec.Meta(title="Message")]
    command_id: Annotated[
        str | None, _meta("Command Id", "The deploy command sent (deploy: true), if one was needed")
    ] = None


class DisableOrgModelResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, msgspec.Meta(title="Model Id")]
    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id")]
    message: Annotated[str, msgspec.Meta(title="Message")]
    undeploy_command_id: Annotated[
        str | None, _meta("Undeploy Command Id", "The undeploy command sent first, if it was deployed")
    ] = None
