"""PURE: where a prediction for a model goes, and what the registry answers for the endpoint's status."""

from __future__ import annotations

import enum

from modelreg.shared.contracts import DeploymentStatus
from modelreg.shared.documents import ModelDetails

# Response headers of the endpoint not passed back: hop-by-hop (RFC 9110 7.6.1) and the framing the API's
# own server sets.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "date",
        "server",
    }
)
# Request headers forwarded to the endpoint (never the client's Authorization: it is the registry's key).
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "x-request-id")


def prediction_endpoint(details: ModelDetails) -> str | None:
    """The endpoint answering for the model now: set while it is deployed (serving), else None."""
    info = details.deployment_info
    if not details.deployed or info is None or not info.endpoint:
        return None
    if details.deployment_status in (DeploymentStatus.FAILED, DeploymentStatus.DELETING):
        return None
    return info.endpoint


class Upstream(enum.Enum):
    PASS = "pass"  # the endpoint's answer goes back as is (2xx, 3xx, and its own 4xx)
    FAILED = "failed"  # the endpoint failed (5xx): 502 endpoint_error


def upstream_outcome(status: int) -> Upstream:
    return Upstream.FAILED if status >= 500 else Upstream.PASS


def response_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in headers if name.lower() not in DROPPED_RESPONSE_HEADERS}


# Answers up to this size, with a Content-Length, are read whole and sent in one write; longer ones, and
# those of unknown length (chunked, e.g. token streams), are streamed chunk by chunk as they arrive. One
# write matters: a small answer sent as several chunk writes waits on TCP's delayed acknowledgements.
BUFFERED_ANSWER_MAX_BYTES = 256 * 1024


def buffer_whole(headers: list[tuple[str, str]]) -> bool:
    """Whether the endpoint's answer is read whole before it is sent back (see BUFFERED_ANSWER_MAX_BYTES)."""
    lengths = [value for name, value in headers if name.lower() == "content-length"]
    if len(lengths) != 1 or not lengths[0].strip().isdigit():
        return False
    return int(lengths[0]) <= BUFFERED_ANSWER_MAX_BYTES
