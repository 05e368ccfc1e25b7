"""What crosses process boundaries: Kafka events and commands, and the seed's shared API shapes.

Every struct here is a msgspec Struct; the JSON Schema in docs/events.md is generated from them
(`modelreg schema`), so the docs cannot drift from the code.
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, NamedTuple, TypeVar

import msgspec

from modelreg.shared.identifiers import ID_PATTERN, ResourceId  # noqa: F401 - re-exported

# Event text ends up in the API, logs and terminals: no control characters (C0, DEL, C1), except newline
# and tab in messages (Ray's failure reasons span lines). "(?![\s\S])" is end-of-text in both Python and
# JSON Schema regexes; "$" would let one trailing newline through in Python.
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*(?![\s\S])"
MESSAGE_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*(?![\s\S])"
# An absolute http(s) URL with a host; no credentials ("user@"), blanks or control characters.
ENDPOINT_PATTERN = (
    r"^https?://[^/?#@:\x00-\x20\x7f-\x9f][^/?#@\x00-\x20\x7f-\x9f]*"
    r"(?:[/?#][^\x00-\x20\x7f-\x9f]*)?(?![\s\S])"
)
Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=NO_CONTROL_PATTERN)]
EndpointUrl = Annotated[str, msgspec.Meta(max_length=2048, pattern=ENDPOINT_PATTERN)]
ShortText = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_CONTROL_PATTERN)]
Message = Annotated[str, msgspec.Meta(max_length=8192, pattern=MESSAGE_PATTERN)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
# Mongo stores int64; anything larger could not be compared by the sequence guard.
Sequence = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
# A named Ray cluster (`modelreg clusters add NAME`): the id rule's characters, short enough for labels.
ClusterName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
]


def now_microseconds() -> int:
    """An event sequence from the clock: microseconds since the epoch, the producers' convention
    (docs/events.md), so sequences keep increasing across processes and restarts."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


_MESSAGE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable_message(text: str) -> str:
    """`text` made acceptable as an event message: CRLF as newline, other control characters as U+FFFD."""
    return _MESSAGE_CONTROL.sub("\ufffd", text.replace("\r\n", "\n"))


class ModelKey(NamedTuple):
    namespace_id: str
    model_id: str

    def kafka_key(self) -> bytes:
        return f"{self.namespace_id}/{self.model_id}".encode()

    def __str__(self) -> str:
        return f"{self.namespace_id}/{self.model_id}"


class ModelFormat(enum.StrEnum):
    SAFETENSORS = "safetensors"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    HUGGINGFACE = "huggingface"


class DeploymentStatus(enum.StrEnum):
    NOT_DEPLOYED = "not_deployed"
    PENDING = "pending"
    DEPLOYED = "deployed"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"
    DELETING = "deleting"


class EventType(enum.StrEnum):
    STARTED = "deployment.started"
    READY = "deployment.ready"
    UNHEALTHY = "deployment.unhealthy"
    FAILED = "deployment.failed"
    DELETING = "deployment.deleting"
    DELETED = "deployment.deleted"


class CommandType(enum.StrEnum):
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    # Re-announce what Ray Serve really runs for the model (sent by `modelreg models resync`).
    RESYNC = "resync"


class DeploymentEvent(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A real state transition of a model's Ray Serve application (topic `model-deployment-events`)."""

    event_id: uuid.UUID
    event_type: EventType
    namespace_id: ResourceId
    model_id: ResourceId
    sequence: Sequence
    occurred_at: AwareDatetime
    ray_cluster_url: Url | None = None
    ray_deployment_name: ShortText | None = None
    endpoint: EndpointUrl | None = None
    base_image: ShortText | None = None
    message: Message | None = None
    # The named Ray cluster (`modelreg clusters`) the transition happened on; None: the default cluster.
    cluster: ClusterName | None = None

    def __post_init__(self) -> None:
        # A ready model must say where it answers; ModelDeploymentInfo requires both fields.
        if self.event_type is EventType.READY and not (self.endpoint and self.base_image):
            raise ValueError("deployment.ready requires endpoint and base_image")

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.namespace_id, self.model_id)


class DeploymentCommand(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A request to deploy, undeploy or resync a model (topic `model-deployment-commands`)."""

    command_id: uuid.UUID
    command_type: CommandType
    namespace_id: ResourceId
    model_id: ResourceId
    requested_at: AwareDatetime
    # The named Ray cluster whose bridge carries the command out; None: the default cluster
    # (shared/cluster_routing.py decides which bridge takes a command).
    cluster: ClusterName | None = None

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.namespace_id, self.model_id)


class ClusterResources(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Totals and what is free, as Ray reports them (memory in bytes)."""

    cpu_total: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    cpu_free: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    gpu_total: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    gpu_free: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    memory_total_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0
    memory_free_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0


class ServeApplicationState(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One Serve application the bridge owns, as its cluster reports it."""

    namespace_id: ResourceId
    model_id: ResourceId
    status: ShortText  # Serve's application status: RUNNING, DEPLOYING, DEPLOY_FAILED, UNHEALTHY, DELETING


class ClusterHealthReport(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A bridge's periodic report on its cluster (topic `model-cluster-health`, keyed by cluster name)."""

    report_id: uuid.UUID
    cluster: ClusterName
    sequence: Sequence
    reported_at: AwareDatetime
    serve_up: bool
    ray_address: Url | None = None
    serve_url: EndpointUrl | None = None
    resources: ClusterResources = msgspec.field(default_factory=ClusterResources)
    applications: list[ServeApplicationState] = msgspec.field(default_factory=list)
    message: Message | None = None

    def kafka_key(self) -> bytes:
        return self.cluster.encode()


class ModelDeploymentInfo(msgspec.Struct, kw_only=True, frozen=True):
    """Deployment information for a model."""

    ray_cluster_url: Annotated[
        str | None,
        msgspec.Meta(title="Ray Cluster Url", description="Ray cluster URL where model is deployed"),
    ] = None
    ray_deployment_name: Annotated[
        str | None, msgspec.Meta(title="Ray Deployment Name", description="Ray deployment name")
    ] = None
    endpoint: Annotated[str, msgspec.Meta(title="Endpoint", description="HTTP endpoint for model inference")]
    base_image: Annotated[
        str, msgspec.Meta(title="Base Image", description="Docker image used for deployment")
    ]
    deployed_at: Annotated[
        datetime | None, msgspec.Meta(title="Deployed At", description="When the model was deployed")
    ] = None


class ModelResourceRequirements(msgspec.Struct, kw_only=True, frozen=True):
    """Resource requirements for model deployment."""

    num_cpus: Annotated[
        float, msgspec.Meta(ge=0.1, le=64, title="Num Cpus", description="Number of CPUs")
    ] = 1
    num_gpus: Annotated[int, msgspec.Meta(ge=0, le=8, title="Num Gpus", description="Number of GPUs")] = 0
    memory: Annotated[int, msgspec.Meta(title="Memory", description="Memory in bytes (default 4GB)")] = (
        4294967296
    )


EVENT_DECODER = msgspec.json.Decoder(DeploymentEvent)
COMMAND_DECODER = msgspec.json.Decoder(DeploymentCommand)
HEALTH_REPORT_DECODER = msgspec.json.Decoder(ClusterHealthReport)
JSON_ENCODER = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    return JSON_ENCODER.encode(message)


class InvalidMessage(ValueError):
    """A Kafka message that can never be applied; `reason` is a stable identifier for the DLQ header."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_Keyed = TypeVar("_Keyed", DeploymentEvent, DeploymentCommand)


def _decode_keyed(
    decoder: msgspec.json.Decoder[_Keyed], invalid_reason: str, key: bytes | None, value: bytes | None
) -> _Keyed:
    """Decode a record whose key must be the "{namespace_id}/{model_id}" of its body."""
    if value is None:
        raise InvalidMessage("empty_value", "record has no value")
    try:
        message = decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise InvalidMessage(invalid_reason, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidMessage("undecodable", str(exc)) from None
    if key != message.key.kafka_key():
        shown = key.decode("utf-8", "replace")[:300] if key is not None else None
        raise InvalidMessage("key_mismatch", f"record key {shown!r} is not {str(message.key)!r}")
    return message


def decode_event(key: bytes | None, value: bytes | None) -> DeploymentEvent:
    """Decode and validate one record of the events topic, or raise InvalidMessage saying why not."""
    return _decode_keyed(EVENT_DECODER, "invalid_event", key, value)


def decode_command(key: bytes | None, value: bytes | None) -> DeploymentCommand:
    """Decode and validate one record of the commands topic, or raise InvalidMessage saying why not."""
    return _decode_keyed(COMMAND_DECODER, "invalid_command", key, value)
