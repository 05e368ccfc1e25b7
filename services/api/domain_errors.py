"""What the API's services refuse, in the registry's terms; `services/api/errors.py` maps each to HTTP.

No Litestar here: a service says what went wrong (and a stable `code` clients may branch on), the web layer
says which status and error body that becomes.
"""

from __future__ import annotations

from typing import Any

from modelreg.shared.contracts import ModelKey


class DomainError(Exception):
    """A request the registry refuses; `message`, `code` and `details` are shown to the client."""

    code: str | None = None

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else type(self).code
        self.details = details


class ModelNotFound(DomainError):
    def __init__(self, key: ModelKey) -> None:
        super().__init__(
            "Model not found",
            details={"resource": "model", "namespace_id": key.namespace_id, "model_id": key.model_id},
        )


class NamespaceNotFound(DomainError):
    def __init__(self, namespace_id: str) -> None:
        super().__init__(
            "Namespace not found", details={"resource": "namespace", "namespace_id": namespace_id}
        )


class VersionExists(DomainError):
    code = "model_version_exists"

    def __init__(self, name: str, version: str, existing_model_id: str | None) -> None:
        super().__init__(
            "A model with this name and version already exists in the namespace",
            details={"name": name, "version": version, "model_id": existing_model_id},
        )


class TransitionInProgress(DomainError):
    code = "transition_in_progress"

    def __init__(self, status: str, reason: str | None) -> None:
        super().__init__(
            f"The model is {status}; wait until that transition finishes",
            details={"deployment_status": status, "reason": reason},
        )


class ConcurrentRequest(DomainError):
    code = "concurrent_request"

    def __init__(self) -> None:
        super().__init__("The model changed concurrently; retry the request")


class BrokerUnavailable(DomainError):
    code = "command_not_published"

    def __init__(self) -> None:
        super().__init__("The deployment command could not be sent; nothing was changed, retry later")


class ArchiveRefused(DomainError):
    """The uploaded archive breaks a safety rule or limit; `code` is the rule's reason."""

    def __init__(self, reason: str, detail: str, details: dict[str, Any]) -> None:
        super().__init__(f"The archive was refused: {detail}", code=reason, details=details)


class InvalidUpload(DomainError):
    """A malformed upload body (multipart syntax, repeated fields, undecodable text)."""


class UnsupportedUpload(DomainError):
    """The upload is not multipart/form-data."""

    code = "multipart_required"


class UploadTooLarge(DomainError):
    """The archive, a form field or the number of parts is over its limit."""


class InvalidField(DomainError):
    """A form field fails validation; answered like request validation (the seed's HTTPValidationError)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OrgModelNotFound(DomainError):
    def __init__(self, model_id: str) -> None:
        super().__init__("Shared model not found", details={"resource": "org_model", "model_id": model_id})


class OrgModelInUse(DomainError):
    """A shared model cannot be deleted while namespaces have it enabled."""

    code = "org_model_enabled"

    def __init__(self, model_id: str, namespaces: list[str]) -> None:
        super().__init__(
            "The shared model is enabled in namespaces; disable it there first",
            details={"model_id": model_id, "namespaces": namespaces},
        )


class ModelIdTaken(DomainError):
    """The namespace has a model of its own under the shared model's id."""

    code = "model_id_taken"

    def __init__(self, key: ModelKey) -> None:
        super().__init__(
            "The namespace already has a model with this id",
            details={"namespace_id": key.namespace_id, "model_id": key.model_id},
        )


class ArchiveMissing(DomainError):
    code = "archive_not_found"

    def __init__(self, model_id: str) -> None:
        super().__init__("The model's archive is not in storage", details={"model_id": model_id})


# --- presigned uploads ------------------------------------------------------------------------------


class UploadNotFound(DomainError):
    code = "upload_not_found"

    def __init__(self, upload_id: str) -> None:
        super().__init__("Upload not found", details={"resource": "upload", "upload_id": upload_id})


class UploadExpired(DomainError):
    code = "upload_expired"

    def __init__(self, upload_id: str) -> None:
        super().__init__(
            "The upload expired; create a new one", details={"resource": "upload", "upload_id": upload_id}
        )


class UploadAlreadyUsed(DomainError):
    """The upload URL or the upload was already used (confirmed, failed, or its bytes already received)."""

    code = "upload_already_used"

    def __init__(self, upload_id: str, state: str, model_id: str | None = None) -> None:
        super().__init__(
            f"The upload was already used (it is {state}); create a new one",
            details={"upload_id": upload_id, "state": state, "model_id": model_id},
        )


class UploadNotReady(DomainError):
    """Nothing was uploaded yet (upload_not_received), or the bytes or a confirm are still in flight."""

    def __init__(self, upload_id: str, message: str, code: str) -> None:
        super().__init__(message, code=code, details={"upload_id": upload_id})


class InvalidUploadSignature(DomainError):
    code = "invalid_upload_signature"

    def __init__(self) -> None:
        super().__init__("The upload URL's signature is missing, malformed or wrong")


class UploadMismatch(DomainError):
    """The uploaded bytes are not what was announced (size, ETag, Content-Type)."""


class NoClusterFits(DomainError):
    """No registered Ray cluster can take the deployment; `details.clusters` has each one's reason."""

    code = "no_cluster_fits"

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("No registered Ray cluster fits this deployment", details={"clusters": reasons})


# --- aliases and the inference route -----------------------------------------------------------------


class AliasNotFound(DomainError):
    code = "alias_not_found"

    def __init__(self, namespace_id: str, name: str, alias: str) -> None:
        super().__init__(
            "Alias not found",
            details={"resource": "alias", "namespace_id": namespace_id, "name": name, "alias": alias},
        )


class AliasNameMismatch(DomainError):
    """An alias of a name may only point at a model of that name."""

    code = "model_name_mismatch"

    def __init__(self, name: str, model_id: str, model_name: str) -> None:
        super().__init__(
            f"Model {model_id} is named {model_name!r}, not {name!r}",
            details={"name": name, "model_id": model_id, "model_name": model_name},
        )


class AliasTargetNotDeployed(DomainError):
    code = "alias_target_not_deployed"

    def __init__(self, model_id: str, status: str) -> None:
        super().__init__(
            "The target model is not deployed (require_deployed=true)",
            details={"model_id": model_id, "deployment_status": status},
        )


class AliasWithoutPrevious(DomainError):
    code = "alias_has_no_previous"

    def __init__(self, alias: str) -> None:
        super().__init__(
            "The alias never pointed at another model; nothing to roll back to", details={"alias": alias}
        )


class ModelHasAliases(DomainError):
    code = "model_has_aliases"

    def __init__(self, key: ModelKey, aliases: list[str]) -> None:
        super().__init__(
            "Aliases point at the model; move them first or delete with force=true (the aliases go too)",
            details={"namespace_id": key.namespace_id, "model_id": key.model_id, "aliases": aliases},
        )


class ModelNotDeployed(DomainError):
    code = "model_not_deployed"

    def __init__(self, key: ModelKey, status: str) -> None:
        super().__init__(
            "The model is not deployed; deploy it first",
            details={"namespace_id": key.namespace_id, "model_id": key.model_id, "deployment_status": status},
        )


class EndpointUnreachable(DomainError):
    code = "endpoint_unreachable"

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(
            "The model's endpoint could not be reached", details={"model_id": model_id, "reason": reason}
        )


class EndpointFailed(DomainError):
    """The endpoint answered with a server error (5xx); its own 4xx go back to the client as they are."""

    code = "endpoint_error"

    def __init__(self, model_id: str, status: int) -> None:
        super().__init__(
            "The model's endpoint failed", details={"model_id": model_id, "endpoint_status": status}
        )


class EndpointTimeout(DomainError):
    code = "endpoint_timeout"

    def __init__(self, model_id: str, timeout_s: float) -> None:
        super().__init__(
            f"The model's endpoint did not answer within {timeout_s:g} s (MODELREG_PREDICT_TIMEOUT_S)",
            details={"model_id": model_id, "timeout_s": timeout_s},
        )


class InvalidFilter(DomainError):
    """The list route's `filter` does not parse, or names a field, operator or value it does not allow."""

    def __init__(self, message: str, code: str, filter_text: str, position: int) -> None:
        super().__init__(
            f"Invalid filter at position {position}: {message}",
            code=code,
            details={"parameter": "filter", "filter": filter_text, "position": position},
        )


class InvalidModelInputs(DomainError):
    """A prediction request's inputs do not fit the model's input_schema (`shared.signatures.check_inputs`);
    `details.inputs` names each offending input and why."""

    code = "invalid_model_inputs"

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        names = ", ".join(sorted({str(p["input"]) for p in problems if p.get("input") is not None}))
        super().__init__(
            f"The inputs do not fit the model's input schema ({names or 'inputs'})",
            details={"inputs": problems},
        )


# --- webhooks ---------------------------------------------------------------------------------------


class WebhookNotFound(DomainError):
    code = "webhook_not_found"

    def __init__(self, webhook_id: str) -> None:
        super().__init__("Webhook not found", details={"resource": "webhook", "webhook_id": webhook_id})


class DeliveryNotFound(DomainError):
    code = "delivery_not_found"

    def __init__(self, webhook_id: str, delivery_id: str) -> None:
        super().__init__(
            "Delivery not found",
            details={"resource": "delivery", "webhook_id": webhook_id, "delivery_id": delivery_id},
        )


class WebhookUrlRefused(DomainError):
    """The webhook URL breaks the URL rules (shared/webhook_rules.py); `code` says which."""

    def __init__(self, code: str, message: str, url: str) -> None:
        super().__init__(f"The webhook URL was refused: {message}", code=code, details={"url": url})
