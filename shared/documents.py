"""Beanie documents: how models live in MongoDB (collection `custom_models`).

The seed's fields come first with the seed's types and defaults. The bookkeeping fields after them are
optional, so a document written by another service with only the seed's fields reads fine and takes events.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

import pymongo
from beanie import Document, Indexed
from pydantic import BaseModel, Field, field_validator

from modelreg.shared.contracts import DeploymentStatus, ModelFormat
from modelreg.shared.deployment_rules import DesiredState


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeploymentInfoFields(BaseModel):
    ray_cluster_url: str | None = None
    ray_deployment_name: str | None = None
    endpoint: str
    base_image: str
    deployed_at: datetime | None = None


class ResourceRequirementsFields(BaseModel):
    num_cpus: float = Field(default=1, ge=0.1, le=64)
    num_gpus: int = Field(default=0, ge=0, le=8)
    memory: int = 4294967296


class HistoryEntry(BaseModel):
    """One applied deployment event, kept on the model it changed."""

    event_id: str
    event_type: str
    sequence: int
    occurred_at: datetime
    applied_at: datetime
    endpoint: str | None = None
    ray_deployment_name: str | None = None
    message: str | None = None
    cluster: str | None = None


class ModelDetails(BaseModel):
    """Everything the details endpoint reads; also the projection that leaves the history out."""

    model_id: str
    namespace_id: str
    name: str
    version: str
    model_archive_url: str
    model_format: ModelFormat
    model_hash: str
    deployed: bool = False
    deployment_info: DeploymentInfoFields | None = None
    framework: str | None = None
    task_type: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    resource_requirements: ResourceRequirementsFields = Field(default_factory=ResourceRequirementsFields)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    # Bookkeeping (absent on documents written by other services).
    deployment_status: DeploymentStatus | None = None
    deployment_message: str | None = None
    last_event_sequence: int | None = None
    observed_at: datetime | None = None
    desired_state: DesiredState | None = None
    desired_at: datetime | None = None
    # The key prefix of the request that set desired_state (None: the CLI, or written before it was kept).
    desired_by: str | None = None
    # Set on a namespace's copy of a shared (org-level) model: the shared model's id (= this model_id).
    org_model_id: str | None = None
    # Ray clusters (docs/clusters.md): the placement the observed state describes and each cluster's
    # sequence guard (worker); the cluster asked for and whether to fail over (API, failover check).
    cluster: str | None = None
    cluster_sequences: dict[str, int] | None = None
    desired_cluster: str | None = None
    failover: bool = False
    # String key/value pairs (shared/tags.py); changed one key at a time ($set/$unset of tags.<key>).
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags_is_empty(cls, value: Any) -> Any:
        # Another writer's `tags: null` reads as no tags.
        return {} if value is None else value


class ModelKeyFields(BaseModel):
    """The projection of a model down to its key."""

    namespace_id: str
    model_id: str


class ModelClusterFields(ModelKeyFields):
    """The projection of a model down to its key and its placement: the cluster it lives on, the Ray cluster
    its deployment info names and the cluster it is asked on."""

    cluster: str | None = None
    deployment_info: DeploymentInfoFields | None = None
    desired_cluster: str | None = None


def _ns_index(name: str, *keys: tuple[str, int]) -> pymongo.IndexModel:
    return pymongo.IndexModel([("namespace_id", pymongo.ASCENDING), *keys], name=name)


_NEWEST = (("created_at", pymongo.DESCENDING), ("model_id", pymongo.ASCENDING))
# The name orders need none of their own: (namespace_id, name, version) is unique, so the unique index read
# forwards or backwards is either order (shared/adapters/mongo/listing.py, LIST_SORTS).
LIST_INDEXES = [
    _ns_index("namespace_created_asc", ("created_at", pymongo.ASCENDING), ("model_id", pymongo.ASCENDING)),
    _ns_index("namespace_task_type_created", ("task_type", pymongo.ASCENDING), *_NEWEST),
    _ns_index("namespace_deployed_created", ("deployed", pymongo.ASCENDING), *_NEWEST),
    _ns_index("namespace_format_created", ("model_format", pymongo.ASCENDING), *_NEWEST),
]
# Indexes an earlier version created that no query needs any more: dropped at connection, as every index
# costs each write on SecantusDB (docs/performance.md, "Indexes").
RETIRED_INDEXES = {"custom_models": ("namespace_name_order", "namespace_name_desc")}


class ModelDocument(Document, ModelDetails):
    """A model as stored in `custom_models`, with its deployment history.

    Clients see it as the seed's `CustomModelDocument` (services/api/models/schemas.py).
    """

    deployment_history: list[HistoryEntry] = Field(default_factory=list)

    class Settings:
        name = "custom_models"
        indexes = [
            pymongo.IndexModel(
                [("namespace_id", pymongo.ASCENDING), ("model_id", pymongo.ASCENDING)],
                unique=True,
                name="namespace_model_unique",
            ),
            pymongo.IndexModel(
                [
                    ("namespace_id", pymongo.ASCENDING),
                    ("name", pymongo.ASCENDING),
                    ("version", pymongo.ASCENDING),
                ],
                unique=True,
                name="namespace_name_version_unique",
            ),
            # The worker's compare-and-set filter (key + last_event_sequence). MongoDB could answer it from
            # the unique key, but SecantusDB (make run, the tests) only plans an index covering every
            # equality and scans the collection without this one (README, "Documents in MongoDB").
            pymongo.IndexModel(
                [
                    ("namespace_id", pymongo.ASCENDING),
                    ("model_id", pymongo.ASCENDING),
                    ("last_event_sequence", pymongo.ASCENDING),
                ],
                name="namespace_model_sequence_guard",
            ),
            # Which namespaces enabled a shared model (its copies carry org_model_id).
            pymongo.IndexModel(
                [("org_model_id", pymongo.ASCENDING), ("namespace_id", pymongo.ASCENDING)],
                name="org_model_copies",
            ),
            # The models placed on (or asked on) a cluster: counts, removal, cluster loss.
            pymongo.IndexModel([("cluster", pymongo.ASCENDING)], name="model_cluster"),
            pymongo.IndexModel([("desired_cluster", pymongo.ASCENDING)], name="model_desired_cluster"),
            # Listing: a namespace's models in a stable order.
            pymongo.IndexModel(
                [
                    ("namespace_id", pymongo.ASCENDING),
                    ("created_at", pymongo.DESCENDING),
                    ("model_id", pymongo.ASCENDING),
                ],
                name="namespace_created",
            ),
            # The list route's other orders and filters: LIST_INDEXES, created by the connection itself
            # (Beanie treats indexes on the same fields in other directions as one and would skip some).
            # The list filter (shared/model_filters.py): tags.<key> comparisons, and updated_at ranges.
            # A compound wildcard index (MongoDB 7+); SecantusDB builds it but plans without it.
            pymongo.IndexModel(
                [("namespace_id", pymongo.ASCENDING), ("tags.$**", pymongo.ASCENDING)], name="namespace_tags"
            ),
            pymongo.IndexModel(
                [("namespace_id", pymongo.ASCENDING), ("updated_at", pymongo.ASCENDING)],
                name="namespace_updated",
            ),
        ]


class OrgModelDetails(BaseModel):
    """A shared (org-level) model, registered once for every namespace (collection `org_models`).

    A namespace that enables it gets a copy in `custom_models` with the same model_id, archive URL and hash,
    and `org_model_id` set; the worker, the bridge and the namespace routes see an ordinary model.
    """

    model_id: str
    name: str
    version: str
    description: str | None = None
    model_archive_url: str
    model_format: ModelFormat
    model_hash: str
    framework: str | None = None
    task_type: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    resource_requirements: ResourceRequirementsFields = Field(default_factory=ResourceRequirementsFields)
    archive_bytes: int | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    # Set while a deletion checks that no namespace has it enabled; enabling refuses it meanwhile.
    deleting: bool = False


class OrgModelDocument(Document, OrgModelDetails):
    class Settings:
        name = "org_models"
        indexes = [
            pymongo.IndexModel([("model_id", pymongo.ASCENDING)], unique=True, name="org_model_unique"),
            pymongo.IndexModel(
                [("name", pymongo.ASCENDING), ("version", pymongo.ASCENDING)],
                unique=True,
                name="org_name_version_unique",
            ),
            pymongo.IndexModel(
                [("created_at", pymongo.DESCENDING), ("model_id", pymongo.ASCENDING)], name="org_created"
            ),
        ]


class ApiKeyDocument(Document):
    """A namespace-scoped API key; only its hash is stored."""

    prefix: Annotated[str, Indexed(unique=True)]
    key_hash: str
    namespaces: list[str] = Field(default_factory=list)
    admin: bool = False
    created_at: datetime = Field(default_factory=utc_now)
    revoked: bool = False

    class Settings:
        name = "api_keys"


class UploadState(enum.StrEnum):
    """A presigned upload: created (pending), its bytes arriving on the API (receiving) or arrived
    (received), then confirmed into a model or failed at confirm; expired ones have their bytes removed and
    stay as expired until the TTL index drops the record."""

    PENDING = "pending"
    RECEIVING = "receiving"
    RECEIVED = "received"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"


# A record stays this long after it expires: the API's cleanup removes expired uploads' bytes and records
# every MODELREG_UPLOAD_CLEANUP_INTERVAL_S; the TTL index only catches records it never got to.
UPLOAD_RECORD_GRACE_S = 7 * 24 * 3600


class UploadRecord(BaseModel):
    """A presigned upload: what the client announced and where its bytes go (what the API's service sees)."""

    upload_id: str
    # The model's owner once confirmed: a namespace, or None for a model shared by every namespace.
    namespace_id: str | None
    name: str
    version: str
    model_format: ModelFormat
    description: str | None = None
    framework: str | None = None
    task_type: str | None = None
    resource_requirements: ResourceRequirementsFields = Field(default_factory=ResourceRequirementsFields)
    file_size_bytes: int | None = None
    storage_key: str
    content_type: str
    state: UploadState = UploadState.PENDING
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime
    model_id: str | None = None


class UploadDocument(Document, UploadRecord):
    """An upload as stored in `model_uploads`."""

    upload_id: Annotated[str, Indexed(unique=True)]

    class Settings:
        name = "model_uploads"
        indexes = [
            pymongo.IndexModel(
                [("expires_at", pymongo.ASCENDING)],
                expireAfterSeconds=UPLOAD_RECORD_GRACE_S,
                name="upload_record_ttl",
            ),
        ]


class ClusterRecord(BaseModel):
    """A named Ray cluster (`modelreg clusters add`) and what its bridge's health reports say.

    The registration fields are written by the operator's CLI; the observed ones only by the worker.
    """

    name: str
    ray_address: str
    serve_url: str
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utc_now)
    # Observed (worker): the last report said Serve is up, and reports keep coming.
    healthy: bool = False
    unreachable: bool = False
    last_seen_at: datetime | None = None
    # The last report that said Serve is up (None: never, or stored before this field).
    last_up_at: datetime | None = None
    last_report_sequence: int | None = None
    resources: dict[str, Any] | None = None
    applications: list[dict[str, Any]] = Field(default_factory=list)
    message: str | None = None


class ClusterDocument(Document, ClusterRecord):
    """A cluster as stored in `ray_clusters`."""

    name: Annotated[str, Indexed(unique=True)]

    class Settings:
        name = "ray_clusters"


class AliasDocument(Document):
    """An alias (collection `model_aliases`): a stable name for one version of a model name.

    Written with a compare-and-set on `revision` (shared/alias_rules.py); the truth every model view's
    `aliases` is read from.
    """

    namespace_id: str
    name: str
    alias: str
    model_id: str
    previous_model_id: str | None = None
    updated_at: datetime = Field(default_factory=utc_now)
    updated_by: str | None = None
    revision: int = 1

    class Settings:
        name = "model_aliases"
        indexes = [
            pymongo.IndexModel(
                [
                    ("namespace_id", pymongo.ASCENDING),
                    ("name", pymongo.ASCENDING),
                    ("alias", pymongo.ASCENDING),
                ],
                unique=True,
                name="namespace_name_alias_unique",
            ),
            # A model's aliases (every model view, the delete guard).
            pymongo.IndexModel(
                [("namespace_id", pymongo.ASCENDING), ("model_id", pymongo.ASCENDING)],
                name="namespace_alias_target",
            ),
            # The models an alias points at (the list filter's `alias` field).
            pymongo.IndexModel(
                [("namespace_id", pymongo.ASCENDING), ("alias", pymongo.ASCENDING)],
                name="namespace_alias_name",
            ),
        ]


class TombstoneDocument(Document):
    """A deleted model's key (collection `model_tombstones`), kept until `expires_at` so the bridge's late
    `deleting`/`deleted` events for it are acknowledged instead of dead-lettered (shared/tombstone_rules.py).
    """

    namespace_id: str
    model_id: str
    deleted_at: datetime
    expires_at: datetime

    class Settings:
        name = "model_tombstones"
        indexes = [
            pymongo.IndexModel(
                [("namespace_id", pymongo.ASCENDING), ("model_id", pymongo.ASCENDING)],
                unique=True,
                name="tombstone_key_unique",
            ),
            pymongo.IndexModel(
                [("expires_at", pymongo.ASCENDING)], expireAfterSeconds=0, name="tombstone_ttl"
            ),
        ]


class AuditDocument(Document):
    """An audit trail entry (`shared.audit.AuditEntry`) as stored in `audit_log`."""

    entry_id: Annotated[str, Indexed(unique=True)]
    at: datetime
    action: str
    namespaces: list[str] = Field(default_factory=list)
    model_id: str | None = None
    target: dict[str, Any] = Field(default_factory=dict)
    via: str
    key_prefix: str | None = None
    request_id: str | None = None
    outcome: str
    code: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    settled_at: datetime | None = None

    class Settings:
        name = "audit_log"
        indexes = [
            # A namespace's trail, newest first (scanned backwards); and one model's. Ascending on `at`:
            # SecantusDB misses the bound of a $gte on a descending key.
            pymongo.IndexModel(
                [
                    ("namespaces", pymongo.ASCENDING),
                    ("at", pymongo.ASCENDING),
                    ("entry_id", pymongo.ASCENDING),
                ],
                name="audit_namespace_at",
            ),
            pymongo.IndexModel(
                [
                    ("namespaces", pymongo.ASCENDING),
                    ("model_id", pymongo.ASCENDING),
                    ("at", pymongo.ASCENDING),
                ],
                name="audit_namespace_model_at",
            ),
            # The organization's trail (GET /v1/audit), every namespace's entries and those of none.
            pymongo.IndexModel([("at", pymongo.ASCENDING), ("entry_id", pymongo.ASCENDING)], name="audit_at"),
        ]


# --- webhooks (docs/webhooks.md) -------------------------------------------------------------------


class WebhookDocument(Document):
    """A namespace's webhook endpoint (collection `webhooks`); `secret` is the whsec_ signing secret."""

    webhook_id: Annotated[str, Indexed(unique=True)]
    namespace_id: Annotated[str, Indexed()]
    url: str
    event_types: list[str] = Field(default_factory=list)
    secret: str
    created_at: datetime = Field(default_factory=utc_now)
    disabled: bool = False
    disabled_reason: str | None = None
    # Since when every delivery attempt failed (None after a success): disables the endpoint after a while.
    failing_since: datetime | None = None

    class Settings:
        name = "webhooks"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDeliveryDocument(Document):
    """One change to deliver to one webhook (collection `webhook_deliveries`); `delivery_id` is the
    `webhook-id` header, the same on every attempt so receivers can deduplicate."""

    delivery_id: Annotated[str, Indexed(unique=True)]
    webhook_id: str
    namespace_id: str
    model_id: str
    change_token: str
    event_type: str
    # The JSON body sent (the same bytes on every attempt).
    body: str
    # Order of the changes (per webhook and model, deliveries go out in this order).
    order: int
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)
    delivered_at: datetime | None = None

    class Settings:
        name = "webhook_deliveries"
        indexes = [
            pymongo.IndexModel(
                [("webhook_id", pymongo.ASCENDING), ("change_token", pymongo.ASCENDING)],
                unique=True,
                name="webhook_change_unique",
            ),
            pymongo.IndexModel([("state", pymongo.ASCENDING), ("order", pymongo.ASCENDING)], name="due"),
            pymongo.IndexModel(
                [("webhook_id", pymongo.ASCENDING), ("order", pymongo.DESCENDING)], name="webhook_log"
            ),
        ]


class DispatcherStateDocument(Document):
    """The webhook dispatcher's stored resume token (collection `webhook_dispatcher`, one document)."""

    name: Annotated[str, Indexed(unique=True)]
    resume_token: str | None = None
    updated_at: datetime = Field(default_factory=utc_now)

    class Settings:
        name = "webhook_dispatcher"


DOCUMENT_MODELS: list[type[Document]] = [
    ModelDocument,
    OrgModelDocument,
    ApiKeyDocument,
    UploadDocument,
    ClusterDocument,
    AliasDocument,
    TombstoneDocument,
    AuditDocument,
]
DOCUMENT_MODELS += [WebhookDocument, WebhookDeliveryDocument, DispatcherStateDocument]
