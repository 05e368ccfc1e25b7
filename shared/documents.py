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
from pydantic import BaseModel, Field

from shared.contracts import DeploymentStatus, ModelFormat
from shared.deployment_rules import DesiredState


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
    # Set on a namespace's copy of a shared (org-level) model: the shared model's id (= this model_id).
    org_model_id: str | None = None


class ModelKeyFields(BaseModel):
    """The projection of a model down to its key."""

    namespace_id: str
    model_id: str


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
            # Listing: a namespace's models in a stable order.
            pymongo.IndexModel(
                [
                    ("namespace_id", pymongo.ASCENDING),
                    ("created_at", pymongo.DESCENDING),
                    ("model_id", pymongo.ASCENDING),
                ],
                name="namespace_created",
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


DOCUMENT_MODELS: list[type[Document]] = [ModelDocument, OrgModelDocument, ApiKeyDocument, UploadDocument]
DOCUMENT_MODELS += [WebhookDocument, WebhookDeliveryDocument, DispatcherStateDocument]
