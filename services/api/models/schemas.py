"""Response bodies of the models area, in the seed's shapes (names, titles and descriptions as the seed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.contracts import ModelDeploymentInfo, ModelResourceRequirements
from shared.documents import utc_now

ModelFormatName = Literal["safetensors", "onnx", "pytorch", "huggingface"]
DeploymentStatusName = Literal["not_deployed", "pending", "deployed", "unhealthy", "failed", "deleting"]


def _meta(title: str, description: str) -> msgspec.Meta:
    return msgspec.Meta(title=title, description=description)


class CustomModelDocument(msgspec.Struct, kw_only=True):
    """Custom model document stored in MongoDB."""

    model_id: Annotated[str, _meta("Model Id", "Unique model identifier")]
    namespace_id: Annotated[str, _meta("Namespace Id", "Owner namespace ID")]
    name: Annotated[str, _meta("Name", "Model name")]
    version: Annotated[str, _meta("Version", "Model version")]
    model_archive_url: Annotated[str, _meta("Model Archive Url", "S3 URL to model archive")]
    model_format: Annotated[ModelFormatName, _meta("Model Format", "Model format/framework")]
    model_hash: Annotated[str, _meta("Model Hash", "SHA256 hash of model file")]
    deployed: Annotated[bool, _meta("Deployed", "Whether model is deployed")] = False
    deployment_info: Annotated[ModelDeploymentInfo | None, msgspec.Meta(description="Deployment details")] = (
        None
    )
    framework: Annotated[str | None, _meta("Framework", "ML framework (e.g., sentence-transformers)")] = None
    task_type: Annotated[str | None, _meta("Task Type", "Task type (e.g., embedding, classification)")] = None
    input_schema: Annotated[dict[str, Any] | None, _meta("Input Schema", "Input schema JSON")] = None
    output_schema: Annotated[dict[str, Any] | None, _meta("Output Schema", "Output schema JSON")] = None
    resource_requirements: Annotated[
        ModelResourceRequirements, msgspec.Meta(description="Resource requirements for deployment")
    ] = msgspec.field(default_factory=ModelResourceRequirements)
    created_at: Annotated[datetime, _meta("Created At", "Creation timestamp")] = msgspec.field(
        default_factory=utc_now
    )
    updated_at: Annotated[datetime, _meta("Updated At", "Last update timestamp")] = msgspec.field(
        default_factory=utc_now
    )
    # Extra properties beyond the seed (documented in the README).
    deployment_status: Annotated[
        DeploymentStatusName,
        _meta(
            "Deployment Status",
            "Registry bookkeeping: not_deployed, pending (requested, not yet observed), deployed, unhealthy, "
            "failed, deleting",
        ),
    ] = "not_deployed"
    deployment_message: Annotated[
        str | None,
        _meta("Deployment Message", "Reason given with the last deployment event (e.g. why it failed)"),
    ] = None


class ModelDetailResponse(msgspec.Struct, kw_only=True):
    """Response model for model details."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model: CustomModelDocument
