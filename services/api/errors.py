"""Error bodies in the seed's shapes, and the exception handlers that produce them.

Every error is an `ErrorResponse` except request validation, which is the seed's `HTTPValidationError`.
Services raise domain errors (`services/api/domain_errors.py`); DOMAIN_ERROR_STATUS says what each answers.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from modelreg.services.api.domain_errors import (
    AliasNameMismatch,
    AliasNotFound,
    AliasTargetNotDeployed,
    AliasWithoutPrevious,
    ArchiveMissing,
    ArchiveRefused,
    BrokerUnavailable,
    ConcurrentRequest,
    DeliveryNotFound,
    DomainError,
    EndpointFailed,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidField,
    InvalidFilter,
    InvalidModelInputs,
    InvalidUpload,
    InvalidUploadSignature,
    ModelHasAliases,
    ModelIdTaken,
    ModelNotDeployed,
    ModelNotFound,
    NamespaceNotFound,
    NoClusterFits,
    OrgModelInUse,
    OrgModelNotFound,
    TransitionInProgress,
    UnsupportedUpload,
    UploadAlreadyUsed,
    UploadExpired,
    UploadMismatch,
    UploadNotFound,
    UploadNotReady,
    UploadTooLarge,
    VersionExists,
    WebhookNotFound,
    WebhookUrlRefused,
)

log = structlog.get_logger("modelreg.api")


class ErrorDetail(msgspec.Struct, kw_only=True):
    """Error detail model."""

    message: Annotated[str, msgspec.Meta(title="Message", description="Human-readable error message")]
    type: Annotated[
        str, msgspec.Meta(title="Type", description="Stable error type identifier (machine-readable)")
    ]
    code: Annotated[
        str | None,
        msgspec.Meta(
            title="Code",
            description="Fine-grained error code for programmatic handling (e.g., namespace_name_taken, "
            "feature_extractor_not_found). Present only when consumers may need to branch on a specific "
            "error condition.",
        ),
    ] = None
    details: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(
            title="Details",
            description="Optional structured details to help debugging (validation errors, IDs, etc.)",
        ),
    ] = None


class ErrorResponse(msgspec.Struct, kw_only=True):
    """Error response model."""

    success: Annotated[
        bool, msgspec.Meta(title="Success", description="Always false for error responses")
    ] = False
    status: Annotated[int, msgspec.Meta(title="Status", description="HTTP status code for this error")]
    error: Annotated[ErrorDetail, msgspec.Meta(description="Error details payload")]


class ValidationError(msgspec.Struct, kw_only=True):
    loc: Annotated[list[str | int], msgspec.Meta(title="Location")]
    msg: Annotated[str, msgspec.Meta(title="Message")]
    type: Annotated[str, msgspec.Meta(title="Error Type")]


class HTTPValidationError(msgspec.Struct, kw_only=True):
    detail: Annotated[list[ValidationError], msgspec.Meta(title="Detail")] = msgspec.field(
        default_factory=list
    )


# The seed's error type for each status: of the API's own errors and of those Litestar raises itself
# (unknown route, wrong method, oversized body, ...).
HTTP_ERROR_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    406: "NotAcceptableError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    410: "GoneError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}

# The status of each domain error; the body is its message, code and details. InvalidField is not here:
# it answers 422 in the shape of request validation (handle_invalid_field).
DOMAIN_ERROR_STATUS: dict[type[DomainError], int] = {
    ModelNotFound: 404,
    NamespaceNotFound: 404,
    VersionExists: 409,
    TransitionInProgress: 409,
    ConcurrentRequest: 409,
    BrokerUnavailable: 503,
    ArchiveRefused: 400,
    InvalidUpload: 400,
    UnsupportedUpload: 415,
    UploadTooLarge: 413,
    OrgModelNotFound: 404,
    ArchiveMissing: 404,
    OrgModelInUse: 409,
    ModelIdTaken: 409,
    UploadNotFound: 404,
    UploadExpired: 410,
    UploadAlreadyUsed: 409,
    UploadNotReady: 409,
    InvalidUploadSignature: 403,
    UploadMismatch: 400,
    NoClusterFits: 409,
    AliasNotFound: 404,
    AliasNameMismatch: 409,
    AliasTargetNotDeployed: 409,
    AliasWithoutPrevious: 409,
    ModelHasAliases: 409,
    ModelNotDeployed: 409,
    EndpointUnreachable: 502,
    EndpointFailed: 502,
    EndpointTimeout: 504,
    InvalidFilter: 422,
    InvalidModelInputs: 422,
    WebhookNotFound: 404,
    DeliveryNotFound: 404,
    WebhookUrlRefused: 400,
}


class ApiError(Exception):
    """An error of the web layer itself (authentication, authorization), with its status."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.details = details
        self.headers = headers


def error_response(
    status: int,
    error_type: str,
    message: str,
    code: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorResponse]:
    body = ErrorResponse(
        status=status, error=ErrorDetail(message=message, type=error_type, code=code, details=details)
    )
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def handle_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorResponse]:
    status = exc.status_code
    return error_response(status, HTTP_ERROR_TYPES[status], exc.message, exc.code, exc.details, exc.headers)


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorResponse]:
    status = DOMAIN_ERROR_STATUS.get(type(exc))
    if status is None:
        return handle_unexpected_error(request, exc)
    return error_response(status, HTTP_ERROR_TYPES[status], exc.message, exc.code, exc.details)


_FIELD_IN_MESSAGE = re.compile(r"at `\$\.([A-Za-z0-9_]+)`|field `([^`]+)`")


def _validation_item(source: str, key: str | None, message: str) -> ValidationError:
    loc: list[str | int] = [source]
    if key:
        loc.append(key)
    return ValidationError(loc=loc, msg=message, type="value_error")


def _validation_items(exc: ValidationException) -> list[ValidationError]:
    items: list[ValidationError] = []
    for entry in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(entry, dict):
            continue
        source = entry.get("source") or "body"
        key = str(entry["key"]) if entry.get("key") else None
        if key == "data":  # a JSON body: name the field msgspec's message names ("at `$.name`")
            field = _FIELD_IN_MESSAGE.search(str(entry.get("message", "")))
            key = (field.group(1) or field.group(2)) if field else None
        items.append(
            _validation_item(
                str(getattr(source, "value", source)), key, str(entry.get("message", exc.detail))
            )
        )
    if not items:
        items.append(_validation_item("request", None, str(exc.detail)))
    return items


def _validation_response(items: list[ValidationError]) -> Response[HTTPValidationError]:
    return Response(
        HTTPValidationError(detail=items),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        media_type=MediaType.JSON,
    )


def handle_validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[HTTPValidationError]:
    return _validation_response(_validation_items(exc))


def handle_invalid_field(_: Request[Any, Any, Any], exc: InvalidField) -> Response[HTTPValidationError]:
    # Form fields are validated by the service, after the body was read: same body as Litestar's validation.
    return _validation_response([_validation_item("body", exc.field, exc.message)])


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    status = exc.status_code
    if status >= 500:
        log.error("server error", status=status, detail=exc.detail)
        return error_response(status, "InternalServerError", "Internal server error")
    return error_response(
        status, HTTP_ERROR_TYPES.get(status, "HTTPError"), str(exc.detail), headers=exc.headers or None
    )


def handle_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    # Internals are logged, never returned.
    log.exception("unhandled error", path=request.url.path, method=request.method)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "InternalServerError", "Internal server error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: handle_api_error,
    DomainError: handle_domain_error,
    InvalidField: handle_invalid_field,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected_error,
}


def error_spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorResponse, description=description)


# The seed's error responses, declared on every /v1 route.
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: error_spec("Bad Request"),
    401: error_spec("Unauthorized"),
    403: error_spec("Forbidden"),
    422: ResponseSpec(data_container=HTTPValidationError, description="Validation Error"),
    500: error_spec("Internal Server Error"),
}
