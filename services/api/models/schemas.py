"""Response bodies of the models area, in the seed's shapes (names, titles and descriptions as the seed)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from modelreg.shared.alias_rules import AliasHistoryKind
from modelreg.shared.contracts import (
    ClusterName,
    DeploymentStatus,
    EventType,
    ModelDeploymentInfo,
    ModelFormat,
    ModelResourceRequirements,
)
from modelreg.shared.documents import ResourceRequirementsFields, utc_now


def values_of(enum_type: type[enum.StrEnum]) -> Any:
    """Literal[...] of the enum's values: documented inline ({"enum": [...]}) as the seed has it, where the
    enum type itself would become a separate OpenAPI component."""
    return Literal[tuple(member.value for member in enum_type)]


if TYPE_CHECKING:  # a computed Literal is opaque to type checkers; its values are strings
    ModelFormatName = str
    DeploymentStatusName = str
    EventTypeName = str
    HistoryEntryTypeName = str
else:
    ModelFormatName = values_of(ModelFormat)
    DeploymentStatusName = values_of(DeploymentStatus)
    EventTypeName = values_of(EventType)
    # A model's history shows its deployment events and the alias changes that concern it.
    HistoryEntryTypeName = Literal[
        tuple(m.value for m in EventType) + tuple(m.value for m in AliasHistoryKind)
    ]


def _meta(title: str, description: str) -> msgspec.Meta:
    return msgspec.Meta(title=title, description=description)


# The seed's name: Litestar names the OpenAPI component after the class (the stored document is
# shared.documents.ModelDocument).
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
    aliases: Annotated[
        list[str], _meta("Aliases", "Aliases of the model's name pointing at this model (always present)")
    ] = msgspec.field(default_factory=list)
    tags: Annotated[
        dict[str, str], _meta("Tags", "String key/value pairs (upload field tags; PATCH the model to change)")
    ] = msgspec.field(default_factory=dict)


class ModelDetailResponse(msgspec.Struct, kw_only=True):
    """Response model for model details."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model: CustomModelDocument


# --- Upload -----------------------------------------------------------------------------------------------

# Visible text without control characters (C0, DEL, C1) nor bidirectional overrides, not blank.
LABEL_PATTERN = r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+$"
GIB = 1024**3
# Below this Ray would reserve next to nothing for the replica (1e-300 GB rounds to 0 bytes).
MIN_MEMORY_GB = 0.125


class UploadForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The text fields of a model upload (multipart/form-data, next to the `file` archive)."""

    name: Annotated[
        str, msgspec.Meta(min_length=1, max_length=256, pattern=LABEL_PATTERN, description="Model name")
    ]
    version: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, pattern=LABEL_PATTERN, description="Model version")
    ]
    model_format: Annotated[ModelFormatName, msgspec.Meta(description="Model format/framework")]
    framework: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=256,
                pattern=LABEL_PATTERN,
                description="ML framework (e.g., sentence-transformers)",
            ),
        ]
        | None
    ) = None
    task_type: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=256,
                pattern=LABEL_PATTERN,
                description="Task type (e.g., embedding, classification)",
            ),
        ]
        | None
    ) = None
    num_cpus: Annotated[float, msgspec.Meta(ge=0.1, le=64, description="Number of CPUs")] = 1
    num_gpus: Annotated[int, msgspec.Meta(ge=0, le=8, description="Number of GPUs")] = 0
    memory_gb: Annotated[
        float,
        msgspec.Meta(ge=MIN_MEMORY_GB, le=1024, description="Memory in GB (stored as bytes), at least 0.125"),
    ] = 4

    @property
    def memory_bytes(self) -> int:
        return round(self.memory_gb * GIB)

    @property
    def resource_requirements(self) -> ResourceRequirementsFields:
        """The form's resources as stored on a model."""
        return ResourceRequirementsFields(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, memory=self.memory_bytes
        )


JSON_FIELD_MAX = 64 * 1024


class NamespaceUploadForm(UploadForm, kw_only=True, forbid_unknown_fields=True):
    """The namespace upload's fields: the shared fields plus tags and the model's signature, as JSON text."""

    tags: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=JSON_FIELD_MAX,
                description='JSON object of string tags, e.g. {"team": "search", "stage": "canary"}',
            ),
        ]
        | None
    ) = None
    input_schema: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=JSON_FIELD_MAX,
                description="Input schema (JSON object); read from ONNX or safetensors archives when absent",
            ),
        ]
        | None
    ) = None
    output_schema: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=JSON_FIELD_MAX,
                description="Output schema (JSON object); inferred from ONNX archives when absent",
            ),
        ]
        | None
    ) = None


class ModelUploadResponse(msgspec.Struct, kw_only=True):
    """Response model for a model upload."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, _meta("Model Id", "Unique model identifier")]
    deployment_status: Annotated[DeploymentStatusName, _meta("Deployment Status", "Deployment status")]
    endpoint: Annotated[
        str,
        _meta(
            "Endpoint",
            "URL the model will be served at once deployed (its Ray Serve route; later the registry's "
            "inference route)",
        ),
    ]
    model_archive_url: Annotated[str, _meta("Model Archive Url", "URL of the stored model archive")]


# --- Listing ----------------------------------------------------------------------------------------------

ListSort = Literal["-created_at", "created_at", "name", "-name"]


ModelSource = Literal["customer", "mixpeek", "system"]


class ModelListItem(CustomModelDocument, kw_only=True):
    """Model item in list response: every field of the details, plus Mixpeek's `source` and `endpoint`."""

    source: Annotated[
        ModelSource, _meta("Source", "Who provides the model: customer (uploaded to the namespace)")
    ] = "customer"
    endpoint: Annotated[
        str | None, _meta("Endpoint", "Inference endpoint while deployed (deployment_info.endpoint)")
    ] = None


class ModelListResponse(msgspec.Struct, kw_only=True):
    """Response model for listing models: one page of a namespace's models."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    models: Annotated[list[ModelListItem], msgspec.Meta(title="Models")]
    total: Annotated[int, _meta("Total", "Models matching the filters, over all pages")]
    namespace_id: Annotated[str, _meta("Namespace Id", "The namespace listed")]
    limit: Annotated[int, msgspec.Meta(title="Limit")]
    offset: Annotated[int, msgspec.Meta(title="Offset")]
    next_offset: Annotated[
        int | None, _meta("Next Offset", "Offset of the next page; null on the last page")
    ] = None


# --- Deployment requests ----------------------------------------------------------------------------------


class DeploymentRequestResponse(msgspec.Struct, kw_only=True):
    """Outcome of an undeploy request (and of the deploy decision, before it is put in Mixpeek's shape)."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, _meta("Model Id", "Unique model identifier")]
    deployment_status: Annotated[
        DeploymentStatusName,
        _meta("Deployment Status", "Status after the request (pending / deleting when sent)"),
    ]
    command_id: Annotated[
        str | None,
        _meta("Command Id", "Id of the command sent to the deployment bridge; null when none was needed"),
    ] = None


class ModelDeployResponse(msgspec.Struct, kw_only=True):
    """Response model for model deployment (Mixpeek's shape, plus the command sent to the bridge)."""

    success: Annotated[
        bool, _meta("Success", "Whether the deployment is requested or done (false: it failed)")
    ] = True
    model_id: Annotated[str, _meta("Model Id", "Model identifier")]
    namespace_id: Annotated[str, _meta("Namespace Id", "Namespace ID")]
    deployment_status: Annotated[
        DeploymentStatusName,
        _meta(
            "Deployment Status",
            "pending until the deployment is observed (with Prefer: wait=N, the status after the wait)",
        ),
    ]
    cached: Annotated[
        bool,
        _meta("Cached", "The model was already deployed: nothing was sent, the running deployment answers"),
    ] = False
    message: Annotated[str, _meta("Message", "Status message")]
    command_id: Annotated[
        str | None,
        _meta("Command Id", "Id of the deploy command sent to the bridge; null when none was needed"),
    ] = None


class ModelDeleteResponse(msgspec.Struct, kw_only=True):
    """Response model for model deletion (the same whether or not the model still existed)."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, _meta("Model Id", "Unique model identifier")]
    message: Annotated[str, _meta("Message", "What was done")]
    deleted: Annotated[
        bool, _meta("Deleted", "Whether this request removed the model (false: it was already gone)")
    ]
    undeploy_command_id: Annotated[
        str | None,
        _meta("Undeploy Command Id", "Id of the undeploy command sent first, if the model was deployed"),
    ] = None


# --- Deployment history -----------------------------------------------------------------------------------


class DeploymentHistoryEvent(msgspec.Struct, kw_only=True):
    """A deployment event that changed the model."""

    event_id: Annotated[str, msgspec.Meta(title="Event Id")]
    event_type: Annotated[
        HistoryEntryTypeName,
        _meta("Event Type", "A deployment event, or alias.assigned / alias.unassigned (an alias moved)"),
    ]
    sequence: Annotated[int, _meta("Sequence", "Per-model order of events")]
    occurred_at: Annotated[datetime, _meta("Occurred At", "When the transition happened")]
    applied_at: Annotated[datetime, _meta("Applied At", "When the registry applied it")]
    endpoint: Annotated[str | None, msgspec.Meta(title="Endpoint")] = None
    ray_deployment_name: Annotated[str | None, msgspec.Meta(title="Ray Deployment Name")] = None
    message: Annotated[str | None, msgspec.Meta(title="Message")] = None
    cluster: Annotated[
        str | None, _meta("Cluster", "The Ray cluster the transition happened on; null: the default one")
    ] = None
    requested_by: Annotated[
        str | None,
        _meta(
            "Requested By",
            "Key prefix of the deploy/undeploy request that caused the event (from the audit trail); null "
            "when no request did",
        ),
    ] = None


class DeploymentHistoryResponse(msgspec.Struct, kw_only=True):
    """A page of a model's deployment history, newest first."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    model_id: Annotated[str, _meta("Model Id", "Unique model identifier")]
    events: Annotated[list[DeploymentHistoryEvent], msgspec.Meta(title="Events")]
    total: Annotated[int, _meta("Total", "Events kept for this model")]
    limit: Annotated[int, msgspec.Meta(title="Limit")]
    offset: Annotated[int, msgspec.Meta(title="Offset")]
    next_offset: Annotated[
        int | None, _meta("Next Offset", "Offset of the next page; null on the last page")
    ] = None


LabelText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
]


class DeployRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where to deploy (optional body of `POST …/deploy`): a registered Ray cluster by name, or any
    cluster carrying all these labels; without either, the fitting cluster with the most free capacity."""

    cluster: Annotated[
        ClusterName | None, _meta("Cluster", "A registered Ray cluster (`modelreg clusters list`)")
    ] = None
    labels: Annotated[
        dict[LabelText, LabelText] | None,
        _meta("Labels", 'Labels the cluster must carry, e.g. {"region": "eu"}'),
    ] = None
    failover: Annotated[
        bool | None,
        _meta("Failover", "Deploy on another fitting cluster when this one is unreachable; null: unchanged"),
    ] = None


# --- Tags ---------------------------------------------------------------------------------------------------


class ModelPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A change to a model: tags to set (a string) or remove (null); other tags stay as they are."""

    tags: Annotated[
        dict[str, str | None],
        msgspec.Meta(
            description='Tags to set, and to remove with null: {"stage": "prod", "canary": null}',
            examples=[{"stage": "prod", "canary": None}],
        ),
    ]
