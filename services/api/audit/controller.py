"""GET /v1/namespaces/{namespace_id}/audit: the namespace's audit trail (its keys and admin keys); GET
/v1/audit: the organization's, every entry (admin keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from modelreg.services.api.audit.schemas import AuditActionName, AuditPageResponse, OrgAuditPageResponse
from modelreg.services.api.audit.service import AuditReads
from modelreg.services.api.auth.guards import admin_guard
from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import Limit, ModelId, NamespaceId, Offset
from modelreg.shared.audit import AuditAction, AuditQuery
from modelreg.shared.identifiers import ID_PATTERN, MAX_ID_LENGTH

Since = Annotated[datetime | None, Parameter(description="Entries at or after this time")]
Until = Annotated[datetime | None, Parameter(description="Entries before this time")]
NamespaceFilter = Annotated[
    str | None,
    Parameter(
        title="Namespace Id",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="Entries of this namespace only",
    ),
]


def audit_query(
    model_id: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    namespace_id: str | None = None,
) -> AuditQuery:
    return AuditQuery(
        namespace_id=namespace_id,
        model_id=model_id,
        action=None if action is None else AuditAction(action),
        since=since,
        until=until,
    )


class AuditController(Controller):
    path = "/namespaces/{namespace_id:str}/audit"
    tags = ["Audit"]

    @get(
        "/",
        summary="Audit trail of a namespace",
        description=(
            "Every write in the namespace (upload, tag change, deploy and undeploy requests, delete, key "
            "create and revoke), newest first, with time, action, key prefix, request id, target and "
            "outcome. Filters: model_id, action, since (inclusive), until (exclusive)."
        ),
        operation_id="list_audit_v1_namespaces__namespace_id__audit_get",
        responses={**ERROR_RESPONSES, 404: error_spec("Namespace not found (or not readable with this key)")},
    )
    async def list_audit(
        self,
        namespace_id: NamespaceId,
        audit_reads: AuditReads,
        limit: Limit = 20,
        offset: Offset = 0,
        model_id: ModelId | None = None,
        action: AuditActionName | None = None,
        since: Since = None,
        until: Until = None,
    ) -> AuditPageResponse:
        query = audit_query(model_id, action, since, until)
        return await audit_reads.page(namespace_id, query, offset, limit)


class OrgAuditController(Controller):
    path = "/audit"
    tags = ["Audit"]

    @get(
        "/",
        summary="Audit trail of the organization",
        description=(
            "Every write of every namespace, and those of none (an admin key's create and revoke), newest "
            "first, in the namespace route's shape. Filters: namespace_id (that namespace's entries), "
            "model_id, action, since (inclusive), until (exclusive). Admin keys only."
        ),
        operation_id="list_org_audit_v1_audit_get",
        guards=[admin_guard],
        responses={**ERROR_RESPONSES, 403: error_spec("Not an admin key (code admin_required)")},
    )
    async def list_org_audit(
        self,
        audit_reads: AuditReads,
        limit: Limit = 20,
        offset: Offset = 0,
        namespace_id: NamespaceFilter = None,
        model_id: ModelId | None = None,
        action: AuditActionName | None = None,
        since: Since = None,
        until: Until = None,
    ) -> OrgAuditPageResponse:
        query = audit_query(model_id, action, since, until, namespace_id)
        return await audit_reads.org_page(query, offset, limit)
